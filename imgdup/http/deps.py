"""Requests -> what a route needs (the pool, the settings, the publisher, the caller) and the guards
that refuse them early: who may call the route (401, 403; 429 once an address has sent too many
wrong credentials) and the ingest rate per caller (429)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.params import Depends as DependsParam
from psycopg_pool import AsyncConnectionPool

from imgdup import metrics
from imgdup.blobs.base import BlobStore
from imgdup.http.auth import ROLE_HEADER, USER_HEADER, Access, Authenticator, Outcome, Principal
from imgdup.http.limits import RateLimiter, retry_after_header
from imgdup.kafka.publisher import EventPublisher
from imgdup.settings import Settings

# create_api puts the settings, the authenticator, the limiters and the blob store on app.state; the
# lifespan adds the pool and the publisher.


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_pool(request: Request) -> AsyncConnectionPool:
    pool: AsyncConnectionPool = request.app.state.pool
    return pool


def get_blobs(request: Request) -> BlobStore:
    blobs: BlobStore = request.app.state.blobs
    return blobs


def get_publisher(request: Request) -> EventPublisher:
    publisher: EventPublisher = request.app.state.publisher
    return publisher


def get_ingest_limiter(request: Request) -> RateLimiter:
    limiter: RateLimiter = request.app.state.ingest_limiter
    return limiter


def get_authenticator(request: Request) -> Authenticator:
    authenticator: Authenticator = request.app.state.authenticator
    return authenticator


SettingsDep = Annotated[Settings, Depends(get_settings)]
PoolDep = Annotated[AsyncConnectionPool, Depends(get_pool)]
BlobsDep = Annotated[BlobStore, Depends(get_blobs)]
PublisherDep = Annotated[EventPublisher, Depends(get_publisher)]
IngestLimiterDep = Annotated[RateLimiter, Depends(get_ingest_limiter)]


def client_address(request: Request) -> str:
    """The caller's address: the TCP peer, or what trusted proxies say it is (auth.client_address)."""
    peer = request.client.host if request.client else None
    return get_authenticator(request).client(peer, request.headers.getlist("x-forwarded-for"))


class LoginRequired(HTTPException):
    """401 on a page a browser opens: the admin page answers it with its login form."""


def _refuse(reason: str, status: int, detail: str, headers: dict[str, str], page: bool) -> HTTPException:
    metrics.API_AUTH_REFUSALS.labels(reason).inc()
    kind = LoginRequired if page and status == 401 else HTTPException
    return kind(status_code=status, detail=detail, headers=headers)


class Allow:
    """The one declaration of who may call a route, as its (or its router's) dependency:
    `dependencies=[allow(Access.READ)]`. The caller lands on `request.state.principal`.

    A plain function, so FastAPI runs it on a worker thread: a scrypt check never blocks the
    event loop."""

    def __init__(self, access: Access, *, page: bool = False) -> None:
        self.access = access
        self.page = page

    def __call__(self, request: Request) -> Principal | None:
        if self.access is Access.PUBLIC:
            return None
        authenticator = get_authenticator(request)
        authorization = request.headers.get("authorization")
        address = client_address(request)
        failures: RateLimiter = request.app.state.auth_failures
        challenge = {"WWW-Authenticate": "Bearer"}
        if authorization is not None and not authenticator.open:
            # A throttled address gets no answer to its guesses, right or wrong.
            wait = failures.peek(address)
            if wait > 0:
                raise _refuse(
                    "throttled",
                    429,
                    "too many wrong credentials from this address",
                    {"Retry-After": retry_after_header(wait)},
                    self.page,
                )
        identity = {
            name: request.headers[name] for name in (ROLE_HEADER, USER_HEADER) if name in request.headers
        }
        peer = request.client.host if request.client else None
        caller = authenticator.authenticate(authorization, peer, identity)
        if caller is Outcome.NONE:
            raise _refuse("missing", 401, "credentials required", challenge, self.page)
        if caller is Outcome.WRONG:
            if authorization is not None:
                failures.acquire(address)
            raise _refuse("wrong", 401, "missing or wrong API token", challenge, self.page)
        assert isinstance(caller, Principal)
        if not caller.may(self.access):
            roles = "+".join(caller.roles)
            raise _refuse("forbidden", 403, f"role {roles} may not {self.access.value} here", {}, self.page)
        request.state.principal = caller
        return caller


def allow(access: Access, *, page: bool = False) -> DependsParam:
    """For a route's or router's `dependencies=[...]`: who may call it (auth.Access)."""
    return DependsParam(dependency=Allow(access, page=page))


def current_principal(request: Request) -> Principal:
    """The caller the route's guard admitted (routes whose access is not PUBLIC only)."""
    principal: Principal = request.state.principal
    return principal


PrincipalDep = Annotated[Principal, Depends(current_principal)]


def ingest_client(request: Request) -> str:
    """The ingest limiter's key: the authenticated caller, however it spells its Authorization
    header; in open mode, its address (after trusted proxies only)."""
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is not None and principal.via != "open":
        return principal.key
    return "address:" + client_address(request)


def limit_ingest_rate(request: Request, limiter: IngestLimiterDep) -> None:
    """A dependency rather than a check in the route, so it runs before the body is validated:
    bad requests count too."""
    wait = limiter.acquire(ingest_client(request))
    if wait > 0:
        metrics.API_INGEST_REQUESTS.labels("429").inc()
        raise HTTPException(
            status_code=429,
            detail="ingest rate limit exceeded",
            headers={"Retry-After": retry_after_header(wait)},
        )


# After the route's allow(...): the caller is known before the rate is counted.
IngestRateLimited = Depends(limit_ingest_rate)
