"""Alert rules: which channels hear of which monitors' changes (by group or labels; a
monitor's own `alerts` override them). Plain defs: they use the database."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status

from app.api.alert_errors import RESPONSES, call
from app.api.body import JSONBodyRoute
from app.api.deps import ServicesDep
from app.schemas.alerts import AlertRuleCreate, AlertRulePatch, AlertRulePublic, AlertRulesPublic

router = APIRouter(prefix="/v1/alert-rules", tags=["alerts"], route_class=JSONBodyRoute)

Ref = Annotated[str, Path(description="The rule's id.", max_length=20)]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=AlertRulePublic,
    summary="Add a rule",
    responses=RESPONSES,
)
def create(body: AlertRuleCreate, services: ServicesDep, response: Response) -> AlertRulePublic:
    rule = call(lambda: services.alerts.rulebook.create_rule(body))
    response.headers["location"] = f"/v1/alert-rules/{rule.id}"
    return rule


@router.get("", response_model=AlertRulesPublic, summary="Rules")
def list_(
    services: ServicesDep,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> AlertRulesPublic:
    return AlertRulesPublic(
        rules=services.alerts.rulebook.rules(offset, limit), offset=offset, limit=limit
    )


@router.get("/{ref}", response_model=AlertRulePublic, summary="A rule", responses=RESPONSES)
def get(ref: Ref, services: ServicesDep) -> AlertRulePublic:
    return call(lambda: services.alerts.rulebook.rule(ref))


@router.patch(
    "/{ref}", response_model=AlertRulePublic, summary="Change a rule", responses=RESPONSES
)
def patch(ref: Ref, body: AlertRulePatch, services: ServicesDep) -> AlertRulePublic:
    return call(lambda: services.alerts.rulebook.update_rule(ref, body))


@router.delete(
    "/{ref}", status_code=status.HTTP_204_NO_CONTENT, summary="Remove a rule", responses=RESPONSES
)
def delete(ref: Ref, services: ServicesDep) -> Response:
    call(lambda: services.alerts.rulebook.delete_rule(ref))
    return Response(status_code=status.HTTP_204_NO_CONTENT)
