"""The marketplace's solution catalog (`solutions` table): what is sold, its tier limits and price."""

from __future__ import annotations

import time
from typing import Any

import msgspec

from core.dynamo import from_item, to_item
from core.settings import Settings


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
            TableName=settings.table("solutions"),
            Item=item,
            ConditionExpression="attribute_not_exists(solution_id)",
        )
    except client.exceptions.ConditionalCheckFailedException:
        pass


async def get_solution(client: Any, settings: Settings, solution_id: str) -> Solution | None:
    response = await client.get_item(TableName=settings.table("solutions"), Key={"solution_id": {"S": solution_id}})
    if "Item" not in response:
        return None
    return msgspec.convert(from_item(response["Item"]), Solution)
