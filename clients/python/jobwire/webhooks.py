"""Verifying the webhooks jobwired sends (Standard Webhooks signatures).

    from jobwire.webhooks import verify_webhook, WebhookVerificationError

    try:
        verify_webhook(request.get_data(), request.headers, secrets)
    except WebhookVerificationError as e:
        abort(400, str(e))

A delivery carries ``webhook-id``, ``webhook-timestamp`` (unix seconds) and
``webhook-signature``: space-separated ``v1,<base64 HMAC-SHA256>`` entries
over ``"{id}.{timestamp}.{body}"``, one per secret the server signs with
(two during a rotation). Secrets are ``whsec_<base64 key>``; raw base64
without the prefix is accepted too, with or without ``=`` padding.

Pure functions of their arguments (plus the clock unless ``now`` is given):
safe from any thread.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import time
from datetime import datetime, timedelta
from typing import Iterable, Mapping, Optional, Union

__all__ = ["DEFAULT_TOLERANCE", "WebhookVerificationError", "verify_webhook"]

#: Seconds a webhook-timestamp may lie before or after the receiver's clock.
DEFAULT_TOLERANCE = 300.0

_SECRET_PREFIX = "whsec_"
_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_TIMESTAMP = re.compile(r"[0-9]{1,18}")


class WebhookVerificationError(Exception):
    """A webhook that did not verify.

    ``kind`` says what failed, the same word in every jobwire SDK:
    ``invalid_secret`` (a secret given to verify_webhook is not base64),
    ``missing_header``, ``invalid_timestamp``, ``timestamp_too_old``,
    ``timestamp_too_new`` or ``no_matching_signature``. ``message`` names the
    header or the times involved.
    """

    INVALID_SECRET = "invalid_secret"
    MISSING_HEADER = "missing_header"
    INVALID_TIMESTAMP = "invalid_timestamp"
    TIMESTAMP_TOO_OLD = "timestamp_too_old"
    TIMESTAMP_TOO_NEW = "timestamp_too_new"
    NO_MATCHING_SIGNATURE = "no_matching_signature"

    def __init__(self, kind: str, message: str) -> None:
        self.kind = kind
        self.message = message
        super().__init__(kind, message)

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"


def _key(secret: str, index: int) -> bytes:
    text = secret[len(_SECRET_PREFIX):] if secret.startswith(
        _SECRET_PREFIX) else secret
    text += "=" * (-len(text) % 4)  # unpadded base64 is accepted too
    key = b""
    if _BASE64.fullmatch(text) and len(text) % 4 == 0:
        try:
            key = base64.b64decode(text, validate=True)
        except binascii.Error:
            key = b""
    if not key:  # never echo the secret itself
        raise WebhookVerificationError(
            WebhookVerificationError.INVALID_SECRET,
            f"secret {index + 1} is not whsec_ followed by a base64 key")
    return key


def _header(headers: Mapping[str, str], name: str) -> str:
    value = None
    for key, v in headers.items():
        if key.lower() == name:
            value = v
            break
    if not value:
        raise WebhookVerificationError(WebhookVerificationError.MISSING_HEADER,
                                       f"missing header {name}")
    return value


def verify_webhook(body: Union[bytes, str], headers: Mapping[str, str],
                   secrets: Union[str, Iterable[str]], *,
                   tolerance: Union[float, timedelta] = DEFAULT_TOLERANCE,
                   now: Union[None, float, datetime] = None) -> None:
    """Checks that ``body`` and ``headers`` are a webhook signed with a secret.

    ``body``: the request body exactly as received (``str`` is taken as its
    UTF-8 bytes); re-serialized JSON will not verify. ``headers``: any
    mapping of header names (matched case-insensitively) to values.
    ``secrets``: one secret or several (a receiver in the middle of a
    rotation); a signature by any of them is accepted. ``tolerance``: how
    far (seconds or a timedelta) webhook-timestamp may be from ``now`` in
    either direction, edges included. ``now``: the receiver's clock (unix
    seconds or an aware datetime), ``time.time()`` when None.

    Returns None when the webhook verifies. Raises WebhookVerificationError
    otherwise; checks run in this order: the secrets, the headers, the
    timestamp's form and window, then the signatures, each compared in
    constant time.
    """
    if isinstance(secrets, str):
        secrets = [secrets]
    keys = [_key(s, i) for i, s in enumerate(secrets)]
    if not keys:
        raise WebhookVerificationError(WebhookVerificationError.INVALID_SECRET,
                                       "no secret given")
    msg_id = _header(headers, "webhook-id")
    timestamp = _header(headers, "webhook-timestamp")
    signatures = _header(headers, "webhook-signature")

    if not _TIMESTAMP.fullmatch(timestamp):
        raise WebhookVerificationError(
            WebhookVerificationError.INVALID_TIMESTAMP,
            f"header webhook-timestamp is not unix seconds: {timestamp[:40]!r}")
    if isinstance(tolerance, timedelta):
        tolerance = tolerance.total_seconds()
    if now is None:
        now = time.time()
    elif isinstance(now, datetime):
        now = now.timestamp()
    sent = int(timestamp)
    if sent < now - tolerance:
        raise WebhookVerificationError(
            WebhookVerificationError.TIMESTAMP_TOO_OLD,
            f"webhook-timestamp {sent} is {now - sent:.0f} s old, more than "
            f"the {tolerance:g} s tolerance")
    if sent > now + tolerance:
        raise WebhookVerificationError(
            WebhookVerificationError.TIMESTAMP_TOO_NEW,
            f"webhook-timestamp {sent} is {sent - now:.0f} s in the future, "
            f"more than the {tolerance:g} s tolerance")

    payload = f"{msg_id}.{timestamp}.".encode() + (
        body.encode() if isinstance(body, str) else bytes(body))
    expected = [
        base64.b64encode(hmac.new(k, payload, hashlib.sha256).digest())
        for k in keys
    ]
    matched = False
    for entry in signatures.split(" "):
        version, sep, signature = entry.partition(",")
        if not sep or version != "v1":
            continue
        given = signature.encode()
        for e in expected:  # every comparison runs: no early exit
            matched |= hmac.compare_digest(e, given)
    if not matched:
        raise WebhookVerificationError(
            WebhookVerificationError.NO_MATCHING_SIGNATURE,
            "no v1 signature in webhook-signature matches a secret")
