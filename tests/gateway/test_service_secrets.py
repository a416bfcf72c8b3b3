"""Secret formats, hashing and fingerprints (SPEC 3.1-3.6)."""

from __future__ import annotations

import hashlib
import re

from fleetwire.identity import fingerprint
from gateway import secrets


def test_formats() -> None:
    """Codes and session tokens are 43 base64url chars; keys and admin tokens carry
    their prefix, 8 lowercase hex and 43 base64url chars."""
    b64 = r"[A-Za-z0-9_-]{43}"
    for _ in range(50):
        assert re.fullmatch(b64, secrets.new_enrollment_code())
        assert re.fullmatch(b64, secrets.new_session_token())
        assert re.fullmatch(r"fleet_[0-9a-f]{8}_" + b64, secrets.new_api_key())
        assert re.fullmatch(r"fleetadm_[0-9a-f]{8}_" + b64, secrets.new_admin_token())
    assert len({secrets.new_session_token() for _ in range(100)}) == 100


def test_shape_checks_refuse_other_credentials() -> None:
    """An api key is not an admin token and neither is a session token."""
    api_key, admin = secrets.new_api_key(), secrets.new_admin_token()
    assert secrets.looks_like_api_key(api_key) and not secrets.looks_like_api_key(admin)
    assert secrets.looks_like_admin_token(admin) and not secrets.looks_like_admin_token(api_key)
    assert not secrets.looks_like_session_token(api_key)
    assert not secrets.looks_like_enrollment_code(secrets.new_enrollment_code() + "x")


def test_fingerprint_is_first_eight_bytes_of_sha256() -> None:
    """The fingerprint is the lowercase hex of SHA-256(pubkey)[:8]."""
    key = bytes(range(32))
    assert fingerprint(key) == hashlib.sha256(key).hexdigest()[:16]


def test_digest_and_constant_time_compare() -> None:
    """A secret's stored form is its SHA-256; equal digests compare equal."""
    token = secrets.new_session_token()
    assert secrets.digest(token) == hashlib.sha256(token.encode()).digest()
    assert secrets.same(secrets.digest(token), secrets.digest(token))
    assert not secrets.same(secrets.digest(token), secrets.digest(token + "x"))
