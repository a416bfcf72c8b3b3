"""The node's ed25519 identity: key generation, challenge signing, fingerprint."""

from __future__ import annotations

import hashlib

import attrs
import nacl.exceptions
import nacl.signing

from agent.errors import ConfigurationError

# Domain separation: the identity key signs nothing else in this form (SPEC 3.4).
AUTH_SIGNATURE_PREFIX = b"fleetnode-auth-v1\x00"


def fingerprint(public_key: bytes) -> str:
    """Lowercase hex of the first 8 bytes of SHA-256 of the raw public key (SPEC 3.2)."""
    return hashlib.sha256(public_key).digest()[:8].hex()


@attrs.frozen
class Identity:
    signing_key: nacl.signing.SigningKey = attrs.field(repr=False)

    @classmethod
    def generate(cls) -> Identity:
        return cls(nacl.signing.SigningKey.generate())

    @classmethod
    def from_hex(cls, private_key_hex: str) -> Identity:
        """The identity stored in the state; a damaged key is a state problem."""
        try:
            return cls(nacl.signing.SigningKey(bytes.fromhex(private_key_hex)))
        except (ValueError, TypeError, nacl.exceptions.CryptoError) as exc:
            raise ConfigurationError("the identity key in the state is damaged") from exc

    @property
    def public_key(self) -> bytes:
        return bytes(self.signing_key.verify_key)

    @property
    def private_key_hex(self) -> str:
        return bytes(self.signing_key).hex()

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.public_key)

    def sign_challenge(self, challenge: bytes) -> bytes:
        return self.signing_key.sign(AUTH_SIGNATURE_PREFIX + challenge).signature
