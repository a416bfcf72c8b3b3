"""The gateway's secrets: generation, SHA-256 hashing, constant-time comparison.

Formats (SPEC 3.1, 3.3, 3.4, 3.6):
    enrollment code   43 base64url chars (32 random bytes, no padding)
    session token     43 base64url chars (32 random bytes, no padding)
    api key           ``fleet_`` + 8 lowercase hex + ``_`` + 43 base64url chars
    admin token       ``fleetadm_`` + 8 lowercase hex + ``_`` + 43 base64url chars

Only ``digest()`` of a secret is ever stored. A string that cannot be a secret of
the expected shape is refused before any database lookup.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

_B64URL_43 = r"[A-Za-z0-9_-]{43}"
_CODE = re.compile(_B64URL_43)
_API_KEY = re.compile(r"fleet_[0-9a-f]{8}_" + _B64URL_43)
_ADMIN_TOKEN = re.compile(r"fleetadm_[0-9a-f]{8}_" + _B64URL_43)

CHALLENGE_BYTES = 32


def _random_b64url() -> str:
    return secrets.token_urlsafe(32)  # 32 bytes -> 43 chars, no padding


def new_enrollment_code() -> str:
    return _random_b64url()


def new_session_token() -> str:
    return _random_b64url()


def new_api_key() -> str:
    return f"fleet_{secrets.token_hex(4)}_{_random_b64url()}"


def new_admin_token() -> str:
    return f"fleetadm_{secrets.token_hex(4)}_{_random_b64url()}"


def new_challenge() -> bytes:
    return secrets.token_bytes(CHALLENGE_BYTES)


def looks_like_enrollment_code(value: str) -> bool:
    return _CODE.fullmatch(value) is not None


def looks_like_session_token(value: str) -> bool:
    return _CODE.fullmatch(value) is not None


def looks_like_api_key(value: str) -> bool:
    return _API_KEY.fullmatch(value) is not None


def looks_like_admin_token(value: str) -> bool:
    return _ADMIN_TOKEN.fullmatch(value) is not None


def digest(secret: str | bytes) -> bytes:
    """The SHA-256 stored in place of a secret."""
    raw = secret.encode("utf-8") if isinstance(secret, str) else secret
    return hashlib.sha256(raw).digest()


def same(a: bytes, b: bytes) -> bool:
    """Constant-time equality, for every comparison of secret material in Python."""
    return hmac.compare_digest(a, b)
