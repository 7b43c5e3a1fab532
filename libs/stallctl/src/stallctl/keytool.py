"""Key pairs for production and the JWKS every service trusts (``stallctl keygen`` / ``jwks``)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from enum import StrEnum
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from stallkit.keys import Issuer, SigningKey, TokenKeys, new_seed, raw_public_key


class KeyKind(StrEnum):
    """What a generated key pair signs."""

    VENDOR_TOKENS = "vendor-tokens"
    STAFF_TOKENS = "staff-tokens"
    STALL_CODES = "stall-codes"


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def new_key_pair(kind: KeyKind) -> tuple[str, str, str]:
    """A fresh pair: the private setting (``NAME=seed``), its public part, and a note on both."""
    seed = new_seed()
    if kind is KeyKind.STALL_CODES:
        private = Ed25519PrivateKey.from_private_bytes(base64.b64decode(seed))
        public = base64.b64encode(raw_public_key(private.public_key())).decode()
        return (
            f"ALLOCATION_STALL_CODE_SIGNING_KEY={seed}",
            f"INSPECTION_STALL_CODE_PUBLIC_KEY={public}",
            "line 1: allocation only (signs stall codes); line 2: inspection (verifies them)",
        )
    if kind is KeyKind.VENDOR_TOKENS:
        key = SigningKey.from_seed(Issuer.ALLOCATION, seed)
        name, holder = "ALLOCATION_TOKEN_SIGNING_KEY", "allocation only (signs vendor tokens)"
    else:
        key = SigningKey.from_seed(Issuer.STAFF, seed)
        name, holder = "STALL_STAFF_SIGNING_KEY", "stallctl only (signs staff tokens), no server"
    return (
        f"{name}={seed}",
        _compact(key.jwks()),
        f"line 1: {holder}; line 2: its public JWKS (kid {key.kid}), for STALL_TOKEN_JWKS: "
        "`stallctl jwks --with '<line 2>'` merges it with the staff key",
    )


def _load(source: str) -> TokenKeys:
    """The keys of a JWKS given as JSON text, an http(s) URL or a file."""
    text = source.strip()
    if text.startswith("{"):
        return TokenKeys.parse(text)
    if text.startswith(("http://", "https://")):
        try:
            response = httpx.get(text, timeout=10.0, follow_redirects=True)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise ValueError(f"cannot fetch {text}: {exc}") from exc
        return TokenKeys.parse(response.text)
    return TokenKeys.from_file(Path(text))


def merged_jwks(staff_key: SigningKey, sources: Iterable[str]) -> str:
    """One JWKS (compact JSON): the staff key's public half and the keys of ``sources``."""
    merged: dict[str, dict[str, str]] = {staff_key.kid: staff_key.public_jwk()}
    for source in sources:
        for jwk in _load(source).jwks()["keys"]:
            known = merged.get(jwk["kid"])
            if known is not None and known["x"] != jwk["x"]:
                raise ValueError(f"kid {jwk['kid']} names two different keys")
            merged[jwk["kid"]] = jwk
    text = _compact({"keys": list(merged.values())})
    TokenKeys.parse(text)  # what services will accept
    return text
