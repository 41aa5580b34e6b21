"""API keys as FastAPI dependencies: a bearer security scheme (the OpenAPI page's Authorize
button), the scope each route needs, 401 vs 403, and rate limits (429 with Retry-After).

`Authorized` goes on a router: the scope comes from the route — `read` for GET, `check` for
the routes in CHECK_ROUTES, `admin` for every other write. `AdminOnly` for the keys' router.
"""

from __future__ import annotations

from typing import Annotated

import anyio
from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.auth.gate import OPEN, Auth
from app.auth.keys import Principal, Scope

bearer = HTTPBearer(
    auto_error=False,  # a missing key is our 401 with WWW-Authenticate, not FastAPI's
    scheme_name="apiKey",
    description="An API key: `Authorization: Bearer uh_…` (`urlhealth keys create`).",
)

# Writes a `check` key may make: submitting and cancelling jobs, one-off checks.
CHECK_ROUTES = frozenset(
    {
        ("POST", "/v1/jobs"),
        ("DELETE", "/v1/jobs/{job_id}"),
        ("POST", "/v1/check"),
        ("POST", "/v1/monitors/{ref}/check"),
    }
)
_READS = frozenset({"GET", "HEAD", "OPTIONS"})


def _unauthorized(detail: str, error: str | None = None) -> HTTPException:
    challenge = f'Bearer error="{error}"' if error else "Bearer"
    return HTTPException(401, detail, headers={"WWW-Authenticate": challenge})


def _too_many(retry_after_s: int, detail: str) -> HTTPException:
    return HTTPException(429, detail, headers={"Retry-After": str(retry_after_s)})


async def authenticate(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    """Who calls: OPEN while keys are not required; else the key's principal, or 401. Calls
    without a valid key are rate limited by client address, so keys cannot be guessed fast.
    Async, so an open API pays no thread hop per call; the key's lookup, which reads the
    database, runs in a thread. The key never reaches a log or an error message."""
    auth: Auth = request.app.state.services.auth
    if not auth.required:
        return OPEN
    principal = None
    if credentials is not None:
        principal = await anyio.to_thread.run_sync(auth.authenticate, credentials.credentials)
    if principal is None:
        peer = request.client.host if request.client else None
        address = auth.clients.of(peer, request.headers.get("x-forwarded-for"))
        wait = auth.limits.address(address)
        if wait is not None:
            raise _too_many(wait, "too many calls without a valid API key from this address")
        if credentials is None:
            raise _unauthorized("an API key is required: send Authorization: Bearer <key>")
        raise _unauthorized("the API key is not valid (unknown or revoked)", "invalid_token")
    assert principal.key_id is not None
    wait = auth.limits.key(principal.key_id)
    if wait is not None:
        raise _too_many(wait, f"rate limit of API key {principal.name!r} reached")
    return principal


CallerDep = Annotated[Principal, Depends(authenticate)]


def _needed(request: Request) -> Scope:
    route = request.scope.get("route")
    path = getattr(route, "path", request.url.path)
    if request.method in _READS:
        return Scope.read
    if (request.method, path) in CHECK_ROUTES:
        return Scope.check
    return Scope.admin


def _allow(caller: Principal, needed: Scope) -> Principal:
    if not caller.scope.allows(needed):
        raise HTTPException(
            403,
            f"API key {caller.name!r} has scope {caller.scope.value!r}; this call needs "
            f"{needed.value!r} (scopes nest: read < check < admin)",
        )
    return caller


async def authorize(request: Request, caller: CallerDep) -> Principal:
    return _allow(caller, _needed(request))


async def authorize_admin(caller: CallerDep) -> Principal:
    return _allow(caller, Scope.admin)


Authorized = Depends(authorize)
AdminOnly = Depends(authorize_admin)
AdminDep = Annotated[Principal, AdminOnly]
