"""GET /api/v1/whoami -> the caller as the API sees it: name, roles, what it may reach (the admin page's
login check; a quick test of a new credential)."""

from __future__ import annotations

from fastapi import APIRouter

from imgdup.http.auth import Access
from imgdup.http.deps import PrincipalDep, allow
from imgdup.http.models import Caller

router = APIRouter(dependencies=[allow(Access.ANY)])


@router.get(
    "/api/v1/whoami",
    response_model=Caller,
    summary="The authenticated caller: name, roles and the access they grant",
    responses={401: {"description": "Missing or wrong credentials"}},
)
async def whoami(principal: PrincipalDep) -> Caller:
    return Caller(
        name=principal.name,
        roles=list(principal.roles),
        via=principal.via,
        access=sorted(access.value for access in principal.access if access is not Access.PUBLIC),
    )
