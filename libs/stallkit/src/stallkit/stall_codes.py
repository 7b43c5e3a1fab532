"""Stall codes: Ed25519-signed payloads that anyone with the public key verifies offline.

Allocation signs them (it holds the private key); inspection verifies them with the public key.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

PREFIX = "ZHSC1"
_PATTERN = re.compile(r"^ZHSC1\.([A-Z]{2}-\d{2}-[A-Z]\d{3})\.(\d{1,6})\.([A-Za-z0-9_-]{86})$")


@dataclass(frozen=True)
class StallCode:
    """What a verified code says: the stall and the code's version."""

    stall_id: str
    version: int


def _message(stall_id: str, version: int) -> bytes:
    return f"{PREFIX}|{stall_id}|{version}".encode()


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def private_key_from_seed(seed_b64: str) -> Ed25519PrivateKey:
    """The signing key from its base64 32-byte seed."""
    return Ed25519PrivateKey.from_private_bytes(base64.b64decode(seed_b64))


def public_key_b64(key: Ed25519PrivateKey) -> str:
    """base64 of the raw 32-byte public key, for verifiers."""
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def sign(key: Ed25519PrivateKey, stall_id: str, version: int) -> str:
    """The printable code text: ``ZHSC1.<stall>.<version>.<signature>``."""
    signature = key.sign(_message(stall_id, version))
    return f"{PREFIX}.{stall_id}.{version}.{_b64url(signature)}"


def verify(public_key: Ed25519PublicKey, text: str) -> StallCode | None:
    """The code's stall and version if the signature holds, else ``None``."""
    match = _PATTERN.match(text.strip())
    if match is None:
        return None
    stall_id, version_text, signature_text = match.groups()
    version = int(version_text)
    try:
        signature = base64.urlsafe_b64decode(signature_text + "==")
        public_key.verify(signature, _message(stall_id, version))
    except (InvalidSignature, ValueError):
        return None
    # One code, one spelling: no leading zeros, no stray bits in the last base64 character.
    if text.strip() != f"{PREFIX}.{stall_id}.{version}.{_b64url(signature)}":
        return None
    return StallCode(stall_id=stall_id, version=version)
