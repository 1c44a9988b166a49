"""The doctor API (``/api/v1/teams/{team}/doctor``): run the configuration doctor, return its report as JSON.

``GET`` runs every check that needs no admin AWS credentials; ``POST`` does the same and also evaluates
policy documents the admin pasted (the role's trust policy, its permissions policy). Checks that need an
admin's AWS credentials come back ``skip`` with ``needs_cli: true``; the report's ``inputs`` let
``byollm doctor`` run them on the admin's machine. Admins only (decided in the doctor, via ``control.authz``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from byollm.api.auth import current_caller, services_of
from byollm.api.errors import AT_THE_DOOR, ApiShape, error_responses
from byollm.control.authz import Caller
from byollm.doctor.service import Doctor
from byollm.errors import ByollmError, ErrorClass

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/teams/{team_uid}/doctor", tags=["doctor"],
                   responses=error_responses(ApiShape.BYOLLM, *AT_THE_DOOR, 403, 404))

CallerDep = Annotated[Caller, Depends(current_caller)]


def _doctor(request: Request) -> Doctor:
    doctor = services_of(request).doctor
    if not isinstance(doctor, Doctor):
        raise ByollmError(ErrorClass.INTERNAL_ERROR, "the configuration doctor is not available in this process")
    return doctor


DoctorDep = Annotated[Doctor, Depends(_doctor)]


class DoctorRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agent: str | None = Field(default=None, max_length=200, description="Check one named agent (UID or name).")
    trust_policy: dict[str, Any] | None = Field(default=None, description="The role's trust policy, as JSON.")
    permissions_policy: dict[str, Any] | None = Field(default=None,
                                                      description="The role's permissions policy, as JSON.")


@router.get("", summary="Run the configuration doctor (checks that need no AWS credentials)")
async def run_doctor(team_uid: str, caller: CallerDep, doctor: DoctorDep,
                     agent: Annotated[str | None, Query(max_length=200)] = None) -> dict[str, Any]:
    report = await doctor.validate(caller, team_uid, agent_uid=agent)
    return report.to_dict()


@router.post("", summary="Run the configuration doctor, also evaluating pasted policy documents")
async def run_doctor_with_documents(team_uid: str, body: DoctorRequest, caller: CallerDep,
                                    doctor: DoctorDep) -> dict[str, Any]:
    report = await doctor.validate(caller, team_uid, agent_uid=body.agent, pasted_trust_policy=body.trust_policy,
                                   pasted_permissions_policy=body.permissions_policy)
    return report.to_dict()
