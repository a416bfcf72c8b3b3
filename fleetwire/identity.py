"""The identity key's protocol: what a node signs, and the fingerprint of its key.

One definition for the agent (which signs), the gateway (which verifies) and the tests.
Each signed message starts with its own context string, so the identity key never signs
two kinds of message that could be mistaken for each other (SPEC 3.4, 3.8).
"""

from __future__ import annotations

import hashlib

AUTH_CONTEXT = b"fleetnode-auth-v1\x00"
REGISTER_CONTEXT = b"fleetnode-register-v1\x00"


def auth_message(challenge: bytes) -> bytes:
    """What CompleteAuthHandshake's ``signature`` signs (SPEC 3.4)."""
    return AUTH_CONTEXT + challenge


def register_message(enrollment_token: str) -> bytes:
    """What Register's ``registrationSignature`` signs: the code, UTF-8 (SPEC 3.8)."""
    return REGISTER_CONTEXT + enrollment_token.encode("utf-8")


def fingerprint(identity_pubkey: bytes) -> str:
    """Lowercase hex of the first 8 bytes of SHA-256 of the raw public key (SPEC 3.2)."""
    return hashlib.sha256(identity_pubkey).digest()[:8].hex()
