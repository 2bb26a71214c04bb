"""verify_webhook against the shared vectors (tests/vectors), and the
vectors against the Standard Webhooks reference library (`standardwebhooks`
on PyPI), so that neither our helper nor the vectors check only themselves.
No jobwired is needed."""

import json
import pathlib
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest
import standardwebhooks
import standardwebhooks.webhooks

from jobwire import WebhookVerificationError, verify_webhook

ROOT = pathlib.Path(__file__).resolve().parents[3]
VECTORS_DIR = ROOT / "tests" / "vectors"
VECTORS = json.loads(
    (VECTORS_DIR / "webhook_signatures.json").read_text(encoding="utf-8"))
CASES = VECTORS["cases"]

# Where the reference library (1.1.0) knowingly parts from the vectors,
# and what it does instead: it unpacks every entry of webhook-signature as
# "version,signature", so an entry without a comma (or the empty entry
# between two spaces) raises ValueError; a secret that is not base64 raises
# binascii.Error (a ValueError); and it reads webhook-timestamp with
# float(), which takes a sign and overflows datetime on 18 digits.
REFERENCE_DIFFERS = {
    "entry_without_comma_skipped": ValueError,
    "multiple_spaces": ValueError,
    "invalid_secret": ValueError,
    "timestamp_18_digits_too_new": "invalid_timestamp",
    "timestamp_with_sign_invalid": "ok",
}
REFERENCE_KINDS = {
    "Missing required headers": "missing_header",
    "Invalid Signature Headers": "invalid_timestamp",
    "Message timestamp too old": "timestamp_too_old",
    "Message timestamp too new": "timestamp_too_new",
    "No matching signature found": "no_matching_signature",
}


def _tolerance(case):
    return case.get("tolerance_seconds", VECTORS["default_tolerance_seconds"])


def test_vectors_are_what_their_generator_writes():
    subprocess.run(
        [sys.executable, str(VECTORS_DIR / "gen_webhook_signatures.py"),
         "--check"], check=True)


def test_vectors_cover_every_error_kind():
    kinds = {c["expected"] for c in CASES}
    assert kinds == {"ok", *VECTORS["error_kinds"]}


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_vector(case):
    run = lambda: verify_webhook(  # noqa: E731
        case["body"], case["headers"], case["secrets"],
        tolerance=_tolerance(case), now=case["now"])
    if case["expected"] == "ok":
        assert run() is None
        return
    with pytest.raises(WebhookVerificationError) as raised:
        run()
    assert raised.value.kind == case["expected"], str(raised.value)
    assert case.get("message_contains", "") in raised.value.message
    for secret in case["secrets"]:  # an error never shows a secret
        key = secret.removeprefix("whsec_")
        assert not key or key not in str(raised.value)


def _reference_verdict(case, monkeypatch, now):
    """What the reference library says of a case, with its clock at now."""
    class FrozenDatetime(datetime):  # the reference reads datetime.now()
        @classmethod
        def now(cls, tz=None):
            return datetime.fromtimestamp(now, tz=tz)

    monkeypatch.setattr(standardwebhooks.webhooks, "datetime", FrozenDatetime)
    outcomes = []
    for secret in case["secrets"]:
        try:
            standardwebhooks.Webhook(secret).verify(
                case["body"], case["headers"], json_parse=False)
            outcomes.append("ok")
        except standardwebhooks.webhooks.EmptyWebhookSecretError:
            outcomes.append("invalid_secret")
        except standardwebhooks.WebhookVerificationError as e:
            outcomes.append(REFERENCE_KINDS[str(e)])
    return "ok" if "ok" in outcomes else outcomes[0]


# The reference's window is fixed at 5 minutes: cases with another
# tolerance are checked there only for their signatures (clock = the
# webhook-timestamp), and only those that verify.
REFERENCE_CASES = [
    c for c in CASES if c["name"] not in REFERENCE_DIFFERS and (
        _tolerance(c) == 300 or c["expected"] == "ok")
]


@pytest.mark.parametrize("case", REFERENCE_CASES,
                         ids=[c["name"] for c in REFERENCE_CASES])
def test_vector_agrees_with_reference_library(case, monkeypatch):
    now = case["now"]
    if _tolerance(case) != 300:
        now = int(case["headers"]["webhook-timestamp"])
    assert _reference_verdict(case, monkeypatch, now) == case["expected"]


def test_reference_library_differs_only_where_listed(monkeypatch):
    by_name = {c["name"]: c for c in CASES}
    for name, reference_says in REFERENCE_DIFFERS.items():
        case = by_name[name]
        if reference_says is ValueError:
            with pytest.raises(ValueError):
                _reference_verdict(case, monkeypatch, case["now"])
        else:
            assert _reference_verdict(case, monkeypatch,
                                      case["now"]) == reference_says, name


def test_spec_example_signature_from_reference_library():
    wh = standardwebhooks.Webhook("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    sent = datetime.fromtimestamp(1614265330, tz=timezone.utc)
    signature = wh.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", sent,
                        '{"test": 2432232314}')
    assert signature == CASES[0]["headers"]["webhook-signature"]


def test_accepts_bytes_datetime_timedelta_and_one_secret():
    case = CASES[0]
    verify_webhook(case["body"].encode(), case["headers"], case["secrets"][0],
                   tolerance=timedelta(seconds=1),
                   now=datetime.fromtimestamp(case["now"] + 1, timezone.utc))
    with pytest.raises(WebhookVerificationError) as raised:
        verify_webhook(case["body"].encode(), case["headers"],
                       case["secrets"][0], tolerance=timedelta(seconds=1),
                       now=datetime.fromtimestamp(case["now"] + 2,
                                                  timezone.utc))
    assert raised.value.kind == WebhookVerificationError.TIMESTAMP_TOO_OLD


def test_uses_the_system_clock_without_now():
    case = CASES[0]
    with pytest.raises(WebhookVerificationError) as raised:
        verify_webhook(case["body"], case["headers"], case["secrets"])
    assert raised.value.kind == "timestamp_too_old"  # 2021 is long ago


def test_no_secret_is_an_invalid_secret():
    with pytest.raises(WebhookVerificationError) as raised:
        verify_webhook(CASES[0]["body"], CASES[0]["headers"], [])
    assert raised.value.kind == "invalid_secret"


def test_a_signature_that_is_not_ascii_does_not_match():
    case = CASES[0]
    headers = dict(case["headers"], **{"webhook-signature": "v1,Zoë"})
    with pytest.raises(WebhookVerificationError) as raised:
        verify_webhook(case["body"], headers, case["secrets"],
                       now=case["now"])
    assert raised.value.kind == "no_matching_signature"
