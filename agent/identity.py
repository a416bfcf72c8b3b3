"""The node's ed25519 identity key: generation, storage form, what it signs.

What is signed and the fingerprint rule are the protocol's (:mod:`fleetwire.identity`).
"""

from __future__ import annotations

import attrs
import nacl.exceptions
import nacl.signing

from agent.errors import ConfigurationError
from fleetwire import identity as wire_identity


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
        return wire_identity.fingerprint(self.public_key)

    def sign_challenge(self, challenge: bytes) -> bytes:
        return self.signing_key.sign(wire_identity.auth_message(challenge)).signature

    def sign_registration(self, enrollment_code: str) -> bytes:
        """Register's proof of possession of this key (SPEC 3.8)."""
        return self.signing_key.sign(wire_identity.register_message(enrollment_code)).signature
