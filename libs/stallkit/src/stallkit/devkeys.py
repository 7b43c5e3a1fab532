"""The development keys' PUBLIC halves, in one place (their seeds live only where they sign).

The seeds are public knowledge (they are in this repository: allocation's config signs vendor
tokens and stall codes, ``stallctl`` signs staff tokens), so anyone can sign with them:
development mode trusts these keys by default and production refuses them.
A unit test checks that each literal here is the public key of its seed.
"""

from __future__ import annotations

from typing import Final

#: base64 of the raw Ed25519 public key of allocation's development stall-code seed.
DEV_STALL_CODE_PUBLIC_KEY_B64: Final = "IybS4cOY6xBFXSWOvA6ZzNpwlIW79h57y1cDx6TSEsE="

#: base64url ``x`` and ``kid`` of allocation's development vendor-token key.
DEV_VENDOR_TOKEN_X: Final = "Ov2S0mhZQKtgw0e_1eJtgokNv2h61HjYsP3I0aqIXXI"
DEV_VENDOR_TOKEN_KID: Final = "allocation-bDZU8DVeGJmX03h1"

#: base64url ``x`` and ``kid`` of stallctl's development staff-token key.
DEV_STAFF_TOKEN_X: Final = "m9gWuA-FzF2-c-4eBwzCxeMGKAa21suF7lHoYrzV9Nc"
DEV_STAFF_TOKEN_KID: Final = "staff-ljhZ2gAIKwGvl5qK"

#: Public keys (base64url ``x``) that must never verify anything in production.
DEV_TOKEN_PUBLIC_KEYS: Final = frozenset({DEV_VENDOR_TOKEN_X, DEV_STAFF_TOKEN_X})


def _jwk(kid: str, x: str) -> dict[str, str]:
    return {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "alg": "EdDSA", "use": "sig"}


def dev_token_jwks() -> dict[str, list[dict[str, str]]]:
    """The JWKS that development mode trusts when ``STALL_TOKEN_JWKS`` is not set."""
    return {
        "keys": [
            _jwk(DEV_VENDOR_TOKEN_KID, DEV_VENDOR_TOKEN_X),
            _jwk(DEV_STAFF_TOKEN_KID, DEV_STAFF_TOKEN_X),
        ]
    }
