"""Ed25519 token keys: signing keys from seeds, public keys as JWKs (RFC 7517/8037), key sets.

A key belongs to one issuer, named at the start of its ``kid``: ``allocation-…`` keys sign
vendor tokens (allocation's login), ``staff-…`` keys sign staff tokens (``stallctl token``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

ALGORITHM = "EdDSA"


class Issuer(StrEnum):
    """Who issues tokens; a token's ``iss`` is ``zhuhai-markets/<issuer>``."""

    ALLOCATION = "allocation"
    STAFF = "staff"

    @property
    def uri(self) -> str:
        """The ``iss`` claim of this issuer's tokens."""
        return f"zhuhai-markets/{self.value}"


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _b64url_decode(text: str) -> bytes:
    if not text or "=" in text or not text.isascii():
        raise ValueError("not unpadded base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not unpadded base64url") from exc


def seed_bytes(seed_b64: str, name: str = "seed") -> bytes:
    """The 32 bytes of a base64 Ed25519 seed; ValueError naming ``name`` if it is not one."""
    try:
        raw = base64.b64decode(seed_b64.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"{name} must be base64 (of a 32-byte Ed25519 seed)") from exc
    if len(raw) != 32:
        raise ValueError(f"{name} must decode to 32 bytes (an Ed25519 seed)")
    return raw


def canonical_seed(seed_b64: str, name: str = "seed") -> str:
    """The seed in standard padded base64 (so equal seeds compare equal as text)."""
    return base64.b64encode(seed_bytes(seed_b64, name)).decode()


def new_seed() -> str:
    """A fresh random Ed25519 seed, base64."""
    return base64.b64encode(secrets.token_bytes(32)).decode()


def raw_public_key(key: Ed25519PublicKey) -> bytes:
    """The 32 raw bytes of a public key."""
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_id(issuer: Issuer, key: Ed25519PublicKey) -> str:
    """``<issuer>-`` and the start of the key's RFC 7638 thumbprint: stable, derived, no config."""
    canonical = json.dumps(
        {"crv": "Ed25519", "kty": "OKP", "x": _b64url(raw_public_key(key))},
        separators=(",", ":"),
        sort_keys=True,
    )
    thumbprint = _b64url(hashlib.sha256(canonical.encode()).digest())
    return f"{issuer.value}-{thumbprint[:16]}"


def public_jwk(issuer: Issuer, key: Ed25519PublicKey) -> dict[str, str]:
    """The public key as an OKP JWK with its ``kid``."""
    return {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": _b64url(raw_public_key(key)),
        "kid": key_id(issuer, key),
        "alg": ALGORITHM,
        "use": "sig",
    }


@dataclass(frozen=True)
class SigningKey:
    """An issuer's private key (only allocation and stallctl ever hold one)."""

    issuer: Issuer
    private: Ed25519PrivateKey
    kid: str

    @classmethod
    def from_seed(cls, issuer: Issuer, seed_b64: str) -> SigningKey:
        """The key of a base64 32-byte seed."""
        private = Ed25519PrivateKey.from_private_bytes(seed_bytes(seed_b64))
        return cls(issuer, private, key_id(issuer, private.public_key()))

    def public_jwk(self) -> dict[str, str]:
        """The public half, as a JWK."""
        return public_jwk(self.issuer, self.private.public_key())

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """A JWKS holding only the public half."""
        return {"keys": [self.public_jwk()]}

    def __repr__(self) -> str:
        return f"SigningKey({self.issuer.value}, kid={self.kid!r})"


@dataclass(frozen=True)
class TrustedKey:
    """A public key that verifies tokens of one issuer."""

    kid: str
    issuer: Issuer
    public: Ed25519PublicKey
    x: str


def _trusted_key(jwk: Any) -> TrustedKey:
    if not isinstance(jwk, dict):
        raise ValueError("each key of the JWKS must be a JSON object")
    kid = jwk.get("kid")
    if not isinstance(kid, str) or not kid:
        raise ValueError("each key of the JWKS needs a kid")
    if "d" in jwk:
        raise ValueError(f"key {kid} holds a private key: services take public keys only")
    if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
        raise ValueError(f"key {kid} is not an Ed25519 key (kty OKP, crv Ed25519)")
    if jwk.get("alg", ALGORITHM) != ALGORITHM or jwk.get("use", "sig") != "sig":
        raise ValueError(f"key {kid} is not for EdDSA signatures")
    issuer_name, dash, _ = kid.partition("-")
    if not dash or issuer_name not in {i.value for i in Issuer}:
        names = ", ".join(f"{i.value}-" for i in Issuer)
        raise ValueError(f"key {kid}: a kid starts with its issuer ({names})")
    x = jwk.get("x")
    try:
        raw = _b64url_decode(x) if isinstance(x, str) else b""
    except ValueError:
        raw = b""
    if not isinstance(x, str) or len(raw) != 32:
        raise ValueError(f"key {kid}: x must be the 32-byte public key, base64url")
    public = Ed25519PublicKey.from_public_bytes(raw)
    return TrustedKey(kid, Issuer(issuer_name), public, _b64url(raw))  # x in canonical form


class TokenKeys(Mapping[str, TrustedKey]):
    """The public keys a service trusts, by ``kid`` (a parsed, checked JWKS)."""

    def __init__(self, keys: Mapping[str, TrustedKey]):
        self._keys = dict(keys)

    @classmethod
    def parse(cls, jwks: str | Mapping[str, Any]) -> TokenKeys:
        """Keys of a JWKS (JSON text or parsed); ValueError saying what is wrong."""
        if isinstance(jwks, str):
            try:
                jwks = json.loads(jwks)
            except json.JSONDecodeError as exc:
                raise ValueError(f"the JWKS is not valid JSON: {exc}") from exc
        entries = jwks.get("keys") if isinstance(jwks, Mapping) else None
        if not isinstance(entries, list) or not entries:
            raise ValueError('a JWKS is a JSON object {"keys": [...]} with at least one key')
        keys: dict[str, TrustedKey] = {}
        for entry in entries:
            key = _trusted_key(entry)
            if key.kid in keys:
                raise ValueError(f"kid {key.kid} appears twice in the JWKS")
            keys[key.kid] = key
        return cls(keys)

    @classmethod
    def from_file(cls, path: Path) -> TokenKeys:
        """Keys of a JWKS file."""
        try:
            text = path.read_text()
        except OSError as exc:
            raise ValueError(f"cannot read the JWKS file {path}: {exc.strerror}") from exc
        return cls.parse(text)

    def __getitem__(self, kid: str) -> TrustedKey:
        return self._keys[kid]

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """The keys as a JWKS again (public members only)."""
        return {"keys": [public_jwk(k.issuer, k.public) | {"kid": k.kid} for k in self.values()]}
