"""FastAPI dependencies as Annotated aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from stallkit.auth import Principal, Role, require_role

from allocation.bootstrap import Allocation


def get_allocation(request: Request) -> Allocation:
    """The composed allocation service of this app."""
    allocation: Allocation = request.app.state.allocation
    return allocation


AllocationDep = Annotated[Allocation, Depends(get_allocation)]
CurrentVendor = Annotated[Principal, require_role(Role.VENDOR)]
CurrentAdmin = Annotated[Principal, require_role(Role.ADMIN)]
