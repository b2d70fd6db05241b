"""The marketplace's solution catalog (`solutions` table): what is sold, by whom, its tier limits and price."""

from __future__ import annotations

import time
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from core.dynamo import from_item, query_all, to_item, values
from core.errors import ConflictError, ForbiddenError, NotFoundError
from core.settings import Settings

SolutionId = Annotated[str, Meta(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")]
STATUSES = ("active", "pending", "retired")


class Solution(msgspec.Struct):
    solution_id: str
    name: str
    description: str
    owner_partner: str
    anonymous_limit: int
    registered_daily_limit: int
    pro_daily_limit: int
    price_paise: int
    status: str = "active"
    updated_at: int = 0


class SolutionInput(msgspec.Struct, forbid_unknown_fields=True):
    solution_id: SolutionId
    name: Annotated[str, Meta(min_length=1, max_length=120)]
    description: Annotated[str, Meta(min_length=1, max_length=4000)]
    anonymous_limit: Annotated[int, Meta(ge=0, le=1000)] = 3
    registered_daily_limit: Annotated[int, Meta(ge=0, le=100_000)] = 10
    pro_daily_limit: Annotated[int, Meta(ge=-1, le=1_000_000)] = -1
    price_paise: Annotated[int, Meta(ge=100, le=100_000_000)] = 49900


class SolutionUpdate(msgspec.Struct, forbid_unknown_fields=True):
    name: Annotated[str, Meta(min_length=1, max_length=120)] | None = None
    description: Annotated[str, Meta(min_length=1, max_length=4000)] | None = None
    anonymous_limit: Annotated[int, Meta(ge=0, le=1000)] | None = None
    registered_daily_limit: Annotated[int, Meta(ge=0, le=100_000)] | None = None
    pro_daily_limit: Annotated[int, Meta(ge=-1, le=1_000_000)] | None = None
    price_paise: Annotated[int, Meta(ge=100, le=100_000_000)] | None = None


def default_solution(settings: Settings) -> Solution:
    return Solution(
        solution_id="aws-solution-finder",
        name="AWS Solution Finder",
        description="Ask in plain words and get a streamed, cited answer from the catalog of AWS solutions.",
        owner_partner="solution-finder",
        anonymous_limit=settings.anonymous_limit,
        registered_daily_limit=settings.registered_daily_limit,
        pro_daily_limit=-1,
        price_paise=settings.pro_price_paise,
        updated_at=int(time.time()),
    )


async def seed_solutions(client: Any, settings: Settings) -> None:
    item = to_item(msgspec.to_builtins(default_solution(settings)))
    try:
        await client.put_item(
            TableName=settings.table("solutions"), Item=item, ConditionExpression="attribute_not_exists(solution_id)"
        )
    except client.exceptions.ConditionalCheckFailedException:
        pass


async def get_solution(client: Any, settings: Settings, solution_id: str) -> Solution | None:
    response = await client.get_item(TableName=settings.table("solutions"), Key={"solution_id": {"S": solution_id}})
    if "Item" not in response:
        return None
    return msgspec.convert(from_item(response["Item"]), Solution)


class CatalogStore:
    def __init__(self, client: Any, settings: Settings) -> None:
        self.client = client
        self.settings = settings
        self.table = settings.table("solutions")

    async def by_status(self, status: str) -> list[Solution]:
        """Every solution in one status, all pages of the index (a query stops at 1 MB otherwise)."""
        items = await query_all(
            self.client,
            TableName=self.table,
            IndexName="status-index",
            KeyConditionExpression="#s = :a",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues=values(a=status),
        )
        return [msgspec.convert(i, Solution) for i in items]

    async def active(self) -> list[Solution]:
        return await self.by_status("active")

    async def owned_by(self, partner_id: str) -> list[Solution]:
        """A partner's own listings in every status, newest change first."""
        mine = [s for status in STATUSES for s in await self.by_status(status) if s.owner_partner == partner_id]
        return sorted(mine, key=lambda s: s.updated_at, reverse=True)

    async def public(self, solution_id: str) -> Solution:
        """A listing as the public sees it: one waiting for approval does not exist yet."""
        solution = await self.get(solution_id)
        if solution.status == "pending":
            raise NotFoundError("No such solution.", reason="unknown_solution")
        return solution

    async def get(self, solution_id: str) -> Solution:
        solution = await get_solution(self.client, self.settings, solution_id)
        if solution is None:
            raise NotFoundError("No such solution.", reason="unknown_solution")
        return solution

    async def create(self, data: SolutionInput, owner_partner: str, *, status: str = "active") -> Solution:
        solution = Solution(
            owner_partner=owner_partner, updated_at=int(time.time()), status=status, **msgspec.structs.asdict(data)
        )
        try:
            await self.client.put_item(
                TableName=self.table,
                Item=to_item(msgspec.to_builtins(solution)),
                ConditionExpression="attribute_not_exists(solution_id)",
            )
        except self.client.exceptions.ConditionalCheckFailedException as exc:
            raise ConflictError("A solution with that id exists.", reason="solution_exists") from exc
        return solution

    async def submit(self, data: SolutionInput, *, editor: str, is_admin: bool) -> Solution:
        """A new listing: an admin's is live at once, a partner's waits for an admin's approval."""
        return await self.create(data, owner_partner=editor, status="active" if is_admin else "pending")

    async def approve(self, solution_id: str) -> Solution:
        """Put a pending listing live, once: a listing that is not pending is refused."""
        try:
            response = await self.client.update_item(
                TableName=self.table,
                Key={"solution_id": {"S": solution_id}},
                UpdateExpression="SET #s = :active, updated_at = :t",
                ConditionExpression="attribute_exists(solution_id) AND #s = :pending",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues=values(active="active", pending="pending", t=int(time.time())),
                ReturnValues="ALL_NEW",
            )
        except self.client.exceptions.ConditionalCheckFailedException as exc:
            raise NotFoundError("No listing waiting for approval with that id.", reason="not_pending") from exc
        return msgspec.convert(from_item(response["Attributes"]), Solution)

    async def retire(self, solution_id: str, *, editor: str, is_admin: bool) -> Solution:
        """Take a listing off the marketplace (its owner or an admin); the finder itself stays."""
        if solution_id == "aws-solution-finder":
            raise ForbiddenError("The finder itself cannot be retired.", reason="not_retirable")
        return await self.update(solution_id, SolutionUpdate(), editor=editor, is_admin=is_admin, status="retired")

    async def update(
        self, solution_id: str, data: SolutionUpdate, *, editor: str, is_admin: bool, status: str | None = None
    ) -> Solution:
        current = await self.get(solution_id)
        if not is_admin and current.owner_partner != editor:
            raise ForbiddenError("Only the owning partner or an admin may change this solution.", reason="not_owner")
        changes = {k: v for k, v in msgspec.structs.asdict(data).items() if v is not None}
        if status:
            changes["status"] = status
        updated = msgspec.structs.replace(current, **changes, updated_at=int(time.time()))
        await self.client.put_item(TableName=self.table, Item=to_item(msgspec.to_builtins(updated)))
        return updated
