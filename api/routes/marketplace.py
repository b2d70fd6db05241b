"""The catalog (public list and detail; admins and partners manage solutions) and partner applications."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Request, get, post, put
from litestar.params import Parameter
from msgspec import Meta

from api.routes.accounts import admin_user, session_user
from api.state import Services
from core.errors import ForbiddenError
from marketplace.browse import CatalogPage, browse
from marketplace.catalog import CatalogStore, Solution, SolutionInput, SolutionUpdate
from marketplace.partners import Application, PartnerStore
from marketplace.users import User, UserStore


class ApplicationInput(msgspec.Struct, forbid_unknown_fields=True):
    company: Annotated[str, Meta(min_length=2, max_length=120)]
    website: Annotated[str, Meta(pattern=r"^https?://[^\s/$.?#].[^\s]{0,200}$")]
    description: Annotated[str, Meta(min_length=20, max_length=4000)]


class Rejection(msgspec.Struct, forbid_unknown_fields=True):
    reason: Annotated[str, Meta(min_length=3, max_length=1000)]


@get("/api/solutions", summary="The public catalog: active solutions")
async def list_solutions(services: Services) -> list[Solution]:
    return sorted(await CatalogStore(services.dynamodb, services.settings).active(), key=lambda s: s.name)


@get("/api/solutions/{solution_id:str}", summary="One solution (listings awaiting approval are not public)")
async def solution_detail(solution_id: str, services: Services) -> Solution:
    return await CatalogStore(services.dynamodb, services.settings).public(solution_id[:64])


@get("/api/catalog", summary="Browse the AWS catalog the finder searches: words, category, service")
async def catalog(
    services: Services,
    q: Annotated[str, Parameter(max_length=200)] = "",
    category: Annotated[str, Parameter(max_length=100)] = "",
    service: Annotated[str, Parameter(max_length=100)] = "",
    offset: Annotated[int, Parameter(ge=0, le=100_000)] = 0,
    limit: Annotated[int, Parameter(ge=1, le=50)] = 20,
) -> CatalogPage:
    return browse(services.settings.catalog_path, q=q, category=category, service=service, offset=offset, limit=limit)


async def _seller(request: Request[Any, Any, Any], services: Services, *, csrf: bool) -> User:
    user = await session_user(request, services, csrf=csrf)
    if user.role not in ("admin", "partner"):
        raise ForbiddenError("Only admins and approved partners may list solutions.", reason="partners_only")
    return user


@post("/api/admin/solutions", status_code=201, summary="Create a solution (admins: live; partners: for approval)")
async def create_solution(data: SolutionInput, request: Request[Any, Any, Any], services: Services) -> Solution:
    user = await _seller(request, services, csrf=True)
    return await CatalogStore(services.dynamodb, services.settings).submit(
        data, editor=user.user_id, is_admin=user.role == "admin"
    )


@put("/api/admin/solutions/{solution_id:str}", summary="Update a solution (admins, or its partner)")
async def update_solution(
    solution_id: str, data: SolutionUpdate, request: Request[Any, Any, Any], services: Services
) -> Solution:
    user = await session_user(request, services, csrf=True)
    return await CatalogStore(services.dynamodb, services.settings).update(
        solution_id[:64], data, editor=user.user_id, is_admin=user.role == "admin"
    )


@post("/api/admin/solutions/{solution_id:str}/retire", status_code=200, summary="Retire a solution (admins)")
async def retire_solution(solution_id: str, request: Request[Any, Any, Any], services: Services) -> Solution:
    user = await admin_user(request, services, csrf=True)
    return await CatalogStore(services.dynamodb, services.settings).retire(
        solution_id[:64], editor=user.user_id, is_admin=True
    )


@get("/api/admin/solutions", summary="Solutions by status, e.g. listings waiting for approval (admins)")
async def solutions_by_status(
    request: Request[Any, Any, Any],
    services: Services,
    status: Annotated[str, Parameter(pattern="^(active|pending|retired)$")] = "pending",
) -> list[Solution]:
    await admin_user(request, services, csrf=False)
    return await CatalogStore(services.dynamodb, services.settings).by_status(status)


@post("/api/admin/solutions/{solution_id:str}/approve", status_code=200, summary="Put a partner's listing live")
async def approve_solution(solution_id: str, request: Request[Any, Any, Any], services: Services) -> Solution:
    await admin_user(request, services, csrf=True)
    return await CatalogStore(services.dynamodb, services.settings).approve(solution_id[:64])


@get("/api/partners/solutions", summary="Your own listings, in every status (partners)")
async def my_solutions(request: Request[Any, Any, Any], services: Services) -> list[Solution]:
    user = await _seller(request, services, csrf=False)
    return await CatalogStore(services.dynamodb, services.settings).owned_by(user.user_id)


@post("/api/partners/solutions", status_code=201, summary="List a new solution; an admin approves it")
async def submit_solution(data: SolutionInput, request: Request[Any, Any, Any], services: Services) -> Solution:
    user = await _seller(request, services, csrf=True)
    return await CatalogStore(services.dynamodb, services.settings).submit(
        data, editor=user.user_id, is_admin=user.role == "admin"
    )


@put("/api/partners/solutions/{solution_id:str}", summary="Edit one of your listings")
async def edit_solution(
    solution_id: str, data: SolutionUpdate, request: Request[Any, Any, Any], services: Services
) -> Solution:
    user = await _seller(request, services, csrf=True)
    return await CatalogStore(services.dynamodb, services.settings).update(
        solution_id[:64], data, editor=user.user_id, is_admin=False
    )


@post("/api/partners/solutions/{solution_id:str}/retire", status_code=200, summary="Retire one of your listings")
async def retire_own_solution(solution_id: str, request: Request[Any, Any, Any], services: Services) -> Solution:
    user = await _seller(request, services, csrf=True)
    return await CatalogStore(services.dynamodb, services.settings).retire(
        solution_id[:64], editor=user.user_id, is_admin=False
    )


@post("/api/partners/applications", status_code=201, summary="Apply to become a partner")
async def apply(data: ApplicationInput, request: Request[Any, Any, Any], services: Services) -> Application:
    user = await session_user(request, services, csrf=True)
    application = await PartnerStore(services.dynamodb, services.settings).apply(
        user.user_id, user.email, data.company.strip(), data.website, data.description.strip()
    )
    await services.outbox.send_once(
        f"partner-received:{application.application_id}",
        user.email,
        "We received your partner application",
        f"Thank you for applying with {application.company}. We will review it soon.",
    )
    return application


@get("/api/partners/applications", summary="Your own applications and their status")
async def my_applications(request: Request[Any, Any, Any], services: Services) -> list[Application]:
    user = await session_user(request, services, csrf=False)
    return await PartnerStore(services.dynamodb, services.settings).for_user(user.user_id)


@get("/api/admin/partner-applications", summary="Applications by status (admins)")
async def review_applications(
    request: Request[Any, Any, Any],
    services: Services,
    status: Annotated[str, Parameter(pattern="^(pending|approved|rejected)$")] = "pending",
) -> list[Application]:
    await admin_user(request, services, csrf=False)
    return await PartnerStore(services.dynamodb, services.settings).by_status(status)


@post(
    "/api/admin/partner-applications/{application_id:str}/approve",
    status_code=200,
    summary="Approve: the applicant becomes a partner",
)
async def approve(application_id: str, request: Request[Any, Any, Any], services: Services) -> Application:
    admin = await admin_user(request, services, csrf=True)
    application = await PartnerStore(services.dynamodb, services.settings).decide(
        application_id[:64], "approved", admin.user_id
    )
    users = UserStore(services.dynamodb, services.redis, services.settings)
    applicant = await users.get(application.user_id)
    if applicant is not None and applicant.role == "user":  # never demote an admin
        await users.set_role(applicant.email, "partner")
    await services.outbox.send_once(
        f"partner-approved:{application.application_id}",
        application.email,
        "Your partner application is approved",
        f"{application.company} can now list solutions in the marketplace.",
    )
    return application


@post(
    "/api/admin/partner-applications/{application_id:str}/reject",
    status_code=200,
    summary="Reject with a reason the applicant sees",
)
async def reject(
    application_id: str, data: Rejection, request: Request[Any, Any, Any], services: Services
) -> Application:
    admin = await admin_user(request, services, csrf=True)
    application = await PartnerStore(services.dynamodb, services.settings).decide(
        application_id[:64], "rejected", admin.user_id, data.reason
    )
    await services.outbox.send_once(
        f"partner-rejected:{application.application_id}",
        application.email,
        "Your partner application",
        f"We could not approve it: {data.reason}",
    )
    return application


ROUTES = [
    list_solutions,
    solution_detail,
    catalog,
    create_solution,
    update_solution,
    retire_solution,
    solutions_by_status,
    approve_solution,
    my_solutions,
    submit_solution,
    edit_solution,
    retire_own_solution,
    apply,
    my_applications,
    review_applications,
    approve,
    reject,
]
