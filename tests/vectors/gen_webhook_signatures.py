#!/usr/bin/env python3
"""Writes webhook_signatures.json: the shared webhook verification vectors.

Every SDK's verify helper (C++, Python, Go, TypeScript) and `jobwire webhook
verify` run all of these cases. The signatures are computed here, from the
Standard Webhooks specification (standardwebhooks.com) with nothing but
Python's `hmac`, `hashlib` and `base64`, so that no SDK checks itself against
its own signing code:

    signature = "v1," + base64(HMAC-SHA256(key, f"{id}.{timestamp}.{body}"))
    key = base64-decode(secret without its "whsec_" prefix)

The first case is the example published in the specification; the script
fails if it does not reproduce that signature.

    python3 tests/vectors/gen_webhook_signatures.py        # rewrites the file
    python3 tests/vectors/gen_webhook_signatures.py --check  # fails if stale
"""

import base64
import hashlib
import hmac
import json
import pathlib
import sys

OUT = pathlib.Path(__file__).resolve().parent / "webhook_signatures.json"

# The example of the specification.
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TS = 1614265330
SPEC_BODY = '{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

# A second secret (a rotation's new one): 32 bytes, padded base64.
NEW_SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()
# A 16-byte key written as unpadded base64 (the reference libraries accept it).
UNPADDED_SECRET = "whsec_" + base64.b64encode(b"jobwire-rotation").decode().rstrip("=")


def key_of(secret: str) -> bytes:
    if secret.startswith("whsec_"):
        secret = secret[len("whsec_"):]
    return base64.b64decode(secret + "=" * (-len(secret) % 4), validate=True)


def sign(secret: str, msg_id: str, timestamp, body: str) -> str:
    content = f"{msg_id}.{timestamp}.{body}".encode()
    digest = hmac.new(key_of(secret), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(msg_id=SPEC_ID, timestamp=SPEC_TS, signature=None, names=None):
    names = names or ("webhook-id", "webhook-timestamp", "webhook-signature")
    out = {}
    for name, value in zip(names, (msg_id, str(timestamp), signature)):
        if value is not None:
            out[name] = value
    return out


def case(name, description, secrets, hdrs, body=SPEC_BODY, now=SPEC_TS,
         expected="ok", message_contains=None, tolerance_seconds=None):
    c = {"name": name, "description": description, "secrets": secrets,
         "headers": hdrs, "body": body, "now": now}
    if tolerance_seconds is not None:
        c["tolerance_seconds"] = tolerance_seconds
    c["expected"] = expected
    if message_contains is not None:
        c["message_contains"] = message_contains
    return c


def cases():
    spec_sig = sign(SPEC_SECRET, SPEC_ID, SPEC_TS, SPEC_BODY)
    if spec_sig != SPEC_SIGNATURE:
        sys.exit(f"the specification's example does not reproduce: {spec_sig}")
    new_sig = sign(NEW_SECRET, SPEC_ID, SPEC_TS, SPEC_BODY)
    ok = headers(signature=spec_sig)
    utf8_body = '{"name": "Zoë", "note": "✓ naïve café"}'
    crlf_body = "line one\r\nline two\n\n"
    bad_ts = "16142653x0"
    return [
        case("spec_example",
             "The example published in the Standard Webhooks specification.",
             [SPEC_SECRET], ok),
        case("secret_without_prefix",
             "A secret given as raw base64, without whsec_.",
             [SPEC_SECRET[len("whsec_"):]], ok),
        case("secret_unpadded_base64",
             "A secret whose base64 has its '=' padding left off.",
             [UNPADDED_SECRET],
             headers(signature=sign(UNPADDED_SECRET, SPEC_ID, SPEC_TS, SPEC_BODY))),
        case("rotation_two_signatures_verifier_holds_second",
             "During a rotation the sender signs with both secrets; a "
             "receiver holding only the new one accepts.",
             [NEW_SECRET], headers(signature=f"{spec_sig} {new_sig}")),
        case("rotation_two_signatures_verifier_holds_first",
             "The same delivery; a receiver still holding only the old secret "
             "accepts too.",
             [SPEC_SECRET], headers(signature=f"{spec_sig} {new_sig}")),
        case("rotation_verifier_holds_two_secrets",
             "The receiver holds the old and the new secret; the sender signs "
             "with the new one only.",
             [SPEC_SECRET, NEW_SECRET], headers(signature=new_sig)),
        case("wrong_secret", "Signed with another secret.",
             [NEW_SECRET], ok, expected="no_matching_signature"),
        case("tampered_body", "The body changed after signing.",
             [SPEC_SECRET], ok, body='{"test": 2432232315}',
             expected="no_matching_signature"),
        case("tampered_id", "The webhook-id changed after signing.",
             [SPEC_SECRET], headers(msg_id="msg_p5jXN8AQM9LWM0D4loKWxJel",
                                    signature=spec_sig),
             expected="no_matching_signature"),
        case("tampered_timestamp",
             "The webhook-timestamp changed after signing (still inside the "
             "window).",
             [SPEC_SECRET], headers(timestamp=SPEC_TS + 1, signature=spec_sig),
             expected="no_matching_signature"),
        case("truncated_signature", "The signature lost its last characters.",
             [SPEC_SECRET], headers(signature=spec_sig[:-4]),
             expected="no_matching_signature"),
        case("timestamp_too_old",
             "Signed 301 s before now: outside the default 5-minute window.",
             [SPEC_SECRET], ok, now=SPEC_TS + 301, expected="timestamp_too_old"),
        case("timestamp_too_new",
             "Signed 301 s after now: outside the default 5-minute window.",
             [SPEC_SECRET], ok, now=SPEC_TS - 301, expected="timestamp_too_new"),
        case("timestamp_just_inside_past",
             "Signed exactly 300 s before now: the window's edge is inside.",
             [SPEC_SECRET], ok, now=SPEC_TS + 300),
        case("timestamp_just_inside_future",
             "Signed exactly 300 s after now: the window's edge is inside.",
             [SPEC_SECRET], ok, now=SPEC_TS - 300),
        case("custom_tolerance_too_old", "A 60 s window, signed 61 s ago.",
             [SPEC_SECRET], ok, now=SPEC_TS + 61, tolerance_seconds=60,
             expected="timestamp_too_old"),
        case("custom_tolerance_inside", "A 60 s window, signed 60 s ago.",
             [SPEC_SECRET], ok, now=SPEC_TS + 60, tolerance_seconds=60),
        case("custom_tolerance_wider",
             "A one-hour window accepts what the default one refuses.",
             [SPEC_SECRET], ok, now=SPEC_TS + 3000, tolerance_seconds=3600),
        case("timestamp_too_old_checked_before_signature",
             "An old timestamp is reported as such even when no signature "
             "matches either.",
             [NEW_SECRET], ok, now=SPEC_TS + 301, expected="timestamp_too_old"),
        case("malformed_timestamp",
             "webhook-timestamp is not a decimal number of seconds (signed "
             "over that very text).",
             [SPEC_SECRET],
             headers(timestamp=bad_ts,
                     signature=sign(SPEC_SECRET, SPEC_ID, bad_ts, SPEC_BODY)),
             expected="invalid_timestamp", message_contains="webhook-timestamp"),
        case("timestamp_18_digits_too_new",
             "The longest timestamp accepted (18 digits) is read, and is far "
             "in the future.",
             [SPEC_SECRET], headers(timestamp="9" * 18, signature=spec_sig),
             expected="timestamp_too_new"),
        case("timestamp_19_digits_invalid",
             "More than 18 digits is not a timestamp.",
             [SPEC_SECRET], headers(timestamp="1" * 19, signature=spec_sig),
             expected="invalid_timestamp"),
        case("timestamp_with_sign_invalid",
             "Only digits: no sign, spaces or fraction.",
             [SPEC_SECRET], headers(timestamp=f"+{SPEC_TS}", signature=spec_sig),
             expected="invalid_timestamp"),
        case("missing_webhook_id", "No webhook-id header.",
             [SPEC_SECRET], {k: v for k, v in ok.items() if k != "webhook-id"},
             expected="missing_header", message_contains="webhook-id"),
        case("missing_webhook_timestamp", "No webhook-timestamp header.",
             [SPEC_SECRET],
             {k: v for k, v in ok.items() if k != "webhook-timestamp"},
             expected="missing_header", message_contains="webhook-timestamp"),
        case("missing_webhook_signature", "No webhook-signature header.",
             [SPEC_SECRET],
             {k: v for k, v in ok.items() if k != "webhook-signature"},
             expected="missing_header", message_contains="webhook-signature"),
        case("empty_webhook_signature",
             "A webhook-signature header with an empty value counts as "
             "missing.",
             [SPEC_SECRET], headers(signature=""),
             expected="missing_header", message_contains="webhook-signature"),
        case("unknown_version_only",
             "The one signature has a version other than v1 (here v1a, with a "
             "valid v1 digest): ignored, so nothing matches.",
             [SPEC_SECRET], headers(signature="v1a," + spec_sig[3:]),
             expected="no_matching_signature"),
        case("unknown_version_then_v1",
             "Entries of other versions are skipped; the v1 entry matches.",
             [SPEC_SECRET],
             headers(signature="v2,c29tZXRoaW5nIGVsc2U= " + spec_sig)),
        case("entry_without_comma_skipped",
             "An entry that is not version,signature is skipped.",
             [SPEC_SECRET], headers(signature="garbage " + spec_sig)),
        case("multiple_spaces",
             "Entries separated (and surrounded) by several spaces.",
             [SPEC_SECRET],
             headers(signature=f"  {new_sig}   {spec_sig}  ")),
        case("uppercase_header_names",
             "Header names are case-insensitive.",
             [SPEC_SECRET],
             headers(signature=spec_sig, names=("Webhook-Id", "WEBHOOK-TIMESTAMP",
                                                "Webhook-Signature"))),
        case("utf8_body", "The body is signed as its UTF-8 bytes.",
             [SPEC_SECRET],
             headers(signature=sign(SPEC_SECRET, SPEC_ID, SPEC_TS, utf8_body)),
             body=utf8_body),
        case("crlf_body",
             "The body is signed verbatim: CR LF and trailing newlines count.",
             [SPEC_SECRET],
             headers(signature=sign(SPEC_SECRET, SPEC_ID, SPEC_TS, crlf_body)),
             body=crlf_body),
        case("empty_body", "An empty body signs and verifies.",
             [SPEC_SECRET],
             headers(signature=sign(SPEC_SECRET, SPEC_ID, SPEC_TS, "")), body=""),
        case("invalid_secret",
             "A secret that is not base64 is refused before anything else.",
             ["whsec_not base64!"], ok, expected="invalid_secret"),
        case("empty_secret", "A secret with no key after whsec_ is refused.",
             ["whsec_"], ok, expected="invalid_secret"),
    ]


def render() -> str:
    doc = {
        "description": (
            "Webhook signature verification vectors (Standard Webhooks, "
            "standardwebhooks.com), run by every jobwire SDK and by `jobwire "
            "webhook verify`. Each case: the receiver's secrets, the request's "
            "headers and body, the receiver's clock `now` (unix seconds), the "
            "window `tolerance_seconds` (default_tolerance_seconds when "
            "absent), and `expected`: \"ok\" or the error kind. When "
            "`message_contains` is set, the error message contains it."),
        "generated_by": "tests/vectors/gen_webhook_signatures.py (Python hmac "
                        "and base64, from the specification)",
        "default_tolerance_seconds": 300,
        "error_kinds": ["invalid_secret", "missing_header", "invalid_timestamp",
                        "timestamp_too_old", "timestamp_too_new",
                        "no_matching_signature"],
        "cases": cases(),
    }
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def main() -> None:
    text = render()
    if sys.argv[1:] == ["--check"]:
        if OUT.read_text(encoding="utf-8") != text:
            sys.exit(f"{OUT} is stale: run {pathlib.Path(__file__).name}")
        return
    OUT.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
