"""FastAPI dependencies as Annotated aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from allocation.bootstrap import Allocation
from stallkit.auth import Principal, Role, require_role


async def get_allocation(request: Request) -> Allocation:
    """The composed allocation service of this app (async: no threadpool hop per request)."""
    allocation: Allocation = request.app.state.allocation
    return allocation


AllocationDep = Annotated[Allocation, Depends(get_allocation)]
CurrentVendor = Annotated[Principal, require_role(Role.VENDOR)]
CurrentAdmin = Annotated[Principal, require_role(Role.ADMIN)]
#: District staff (of any district: vendors have none) or an administrator.
CurrentVerifier = Annotated[Principal, require_role(Role.DISTRICT, Role.ADMIN)]
