"""FastAPI dependencies as Annotated aliases."""

from __future__ import annotations

import ipaddress
from typing import Annotated

from fastapi import Depends, Request

from allocation.bootstrap import Allocation
from stallkit.auth import Principal, Role, require_role


async def get_allocation(request: Request) -> Allocation:
    """The composed allocation service of this app (async: no threadpool hop per request)."""
    allocation: Allocation = request.app.state.allocation
    return allocation


def client_key(host: str | None) -> str:
    """What rate limits count a caller as: its IPv4 address, or its IPv6 /64 (a subscriber
    gets a whole /64 and picks addresses in it at will)."""
    if not host:
        return "unknown"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host[:64]  # not an address (a test transport's name)
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


async def client_address(request: Request) -> str:
    """The caller's address as the rate limits count it. It is the connection's peer, or, from
    a proxy uvicorn trusts (``--forwarded-allow-ips`` / ``FORWARDED_ALLOW_IPS``), the address
    that proxy saw (``X-Forwarded-For``): behind an ingress, trust exactly the ingress."""
    return client_key(request.client.host if request.client else None)


AllocationDep = Annotated[Allocation, Depends(get_allocation)]
ClientAddress = Annotated[str, Depends(client_address)]
CurrentVendor = Annotated[Principal, require_role(Role.VENDOR)]
CurrentAdmin = Annotated[Principal, require_role(Role.ADMIN)]
#: District staff (of any district: vendors have none) or an administrator.
CurrentVerifier = Annotated[Principal, require_role(Role.DISTRICT, Role.ADMIN)]
