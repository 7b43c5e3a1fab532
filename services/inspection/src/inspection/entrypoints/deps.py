"""FastAPI dependencies of the inspection routes, as ``Annotated`` aliases."""

from __future__ import annotations

from typing import Annotated

from stallkit.auth import Principal, Role, require_role

#: A patrol officer or an administrator.
PatrolOrAdmin = Annotated[Principal, require_role(Role.PATROL, Role.ADMIN)]

#: Any staff member: patrol officer, district office or administrator.
Staff = Annotated[Principal, require_role(Role.PATROL, Role.DISTRICT, Role.ADMIN)]
