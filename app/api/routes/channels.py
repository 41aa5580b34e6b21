"""Alert channels: CRUD (secrets write-only: reads show them masked) and a test message.
Plain defs: they read and write the database, off the event loop."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status

from app.api.alert_errors import RESPONSES, call
from app.api.body import JSONBodyRoute
from app.api.deps import ServicesDep
from app.schemas.alerts import (
    ChannelCreate,
    ChannelPatch,
    ChannelPublic,
    ChannelsPublic,
    ChannelTestPublic,
)

router = APIRouter(prefix="/v1/channels", tags=["alerts"], route_class=JSONBodyRoute)

Ref = Annotated[str, Path(description="The channel's id or slug.", max_length=64)]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ChannelPublic,
    summary="Add a channel",
    responses=RESPONSES,
)
def create(body: ChannelCreate, services: ServicesDep, response: Response) -> ChannelPublic:
    alerts = services.alerts
    channel_id = call(lambda: alerts.create_channel(body.name, body.config))
    response.headers["location"] = f"/v1/channels/{channel_id}"
    return call(lambda: alerts.channel(str(channel_id)))


@router.get("", response_model=ChannelsPublic, summary="Channels, secrets masked")
def list_(
    services: ServicesDep,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> ChannelsPublic:
    found = services.alerts.channels(offset, limit)
    return ChannelsPublic(channels=found, offset=offset, limit=limit)


@router.get("/{ref}", response_model=ChannelPublic, summary="A channel", responses=RESPONSES)
def get(ref: Ref, services: ServicesDep) -> ChannelPublic:
    return call(lambda: services.alerts.channel(ref))


@router.patch(
    "/{ref}", response_model=ChannelPublic, summary="Change a channel", responses=RESPONSES
)
def patch(ref: Ref, body: ChannelPatch, services: ServicesDep) -> ChannelPublic:
    return call(lambda: services.alerts.update_channel(ref, body.name, body.config))


@router.delete(
    "/{ref}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Remove a channel",
    responses=RESPONSES,
)
def delete(ref: Ref, services: ServicesDep) -> Response:
    call(lambda: services.alerts.delete_channel(ref))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{ref}/test",
    response_model=ChannelTestPublic,
    responses=RESPONSES,
    summary="Send a test message now and answer how it went",
)
def test(ref: Ref, services: ServicesDep) -> ChannelTestPublic:
    return call(lambda: services.alerts.test_channel(ref))
