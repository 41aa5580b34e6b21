"""`/v1/keys` (admin): create (answers the key, once), list, revoke. Plain defs: they read and
write the database, off the event loop."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Response, status

from app.api.auth import AdminOnly
from app.api.body import JSONBodyRoute
from app.api.deps import ServicesDep
from app.auth.keys import KeyInfo, Scope
from app.schemas.keys import KeyCreate, KeyCreated, KeyPublic, KeysPublic

router = APIRouter(
    prefix="/v1/keys", tags=["keys"], route_class=JSONBodyRoute, dependencies=[AdminOnly]
)

KeyId = Annotated[int, Path(description="The key's id (from the list).", ge=1)]


def _public(info: KeyInfo) -> dict[str, object]:
    return {
        "id": info.id,
        "name": info.name,
        "prefix": info.prefix,
        "scope": info.scope.value,
        "created_at": info.created_at,
        "last_used_at": info.last_used_at,
        "revoked_at": info.revoked_at,
    }


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=KeyCreated,
    summary="Create a key (the answer is the only time it is shown)",
)
def create(body: KeyCreate, services: ServicesDep) -> KeyCreated:
    info, key = services.auth.keys.create(body.name, Scope(body.scope))
    return KeyCreated.model_validate({**_public(info), "key": key})


@router.get("", response_model=KeysPublic, summary="Keys: prefix, name, scope, use, revocation")
def list_keys(services: ServicesDep) -> KeysPublic:
    keys = [KeyPublic.model_validate(_public(info)) for info in services.auth.keys.list()]
    return KeysPublic(keys=keys)


@router.delete(
    "/{key_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Revoke a key (at once)"
)
def revoke(key_id: KeyId, services: ServicesDep) -> Response:
    if not services.auth.keys.revoke(key_id):
        raise HTTPException(404, f"no API key with id {key_id}")
    return Response(status_code=status.HTTP_204_NO_CONTENT)
