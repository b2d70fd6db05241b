"""A thin async DynamoDB helper over aioboto3's low-level client: type marshalling, queries that page
through every result (a bare Query stops silently at 1 MB), and table creation."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import aioboto3
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.config import Config

from core.settings import Settings

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def _decimals(value: Any) -> Any:
    """DynamoDB numbers are decimals; floats go through their shortest repr so nothing is invented."""
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, dict):
        return {k: _decimals(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decimals(v) for v in value]
    return value


def to_item(values: dict[str, Any]) -> dict[str, Any]:
    return {k: _serializer.serialize(_decimals(v)) for k, v in values.items() if v is not None}


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | set):
        return [_plain(v) for v in value]
    return value


def from_item(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _plain(_deserializer.deserialize(v)) for k, v in item.items()}


def values(**named: Any) -> dict[str, Any]:
    """ExpressionAttributeValues from keyword arguments: values(v=1) -> {':v': {'N': '1'}}."""
    return {f":{k}": _serializer.serialize(_decimals(v)) for k, v in named.items()}


async def query_all(client: Any, *, page_size: int | None = None, **request: Any) -> list[dict[str, Any]]:
    """Every item a Query matches, as plain values, following LastEvaluatedKey page by page.

    A single Query returns at most 1 MB (before any FilterExpression), so reading only its first
    page drops items without an error. `page_size` sets Limit per page (tests use it to force pages).
    """
    items: list[dict[str, Any]] = []
    async for page in query_pages(client, page_size=page_size, **request):
        items.extend(page)
    return items


async def query_pages(
    client: Any, *, page_size: int | None = None, **request: Any
) -> AsyncIterator[list[dict[str, Any]]]:
    """The pages of a Query, each a list of plain items, until DynamoDB says there are no more."""
    if page_size:
        request["Limit"] = page_size
    while True:
        response = await client.query(**request)
        yield [from_item(item) for item in response.get("Items", [])]
        last = response.get("LastEvaluatedKey")
        if not last:
            return
        request["ExclusiveStartKey"] = last


@dataclass(frozen=True)
class TableSpec:
    name: str
    hash_key: str
    range_key: str | None = None
    indexes: tuple[tuple[str, str, str | None], ...] = ()  # (index name, hash key, range key)
    ttl_attribute: str | None = None


@contextlib.asynccontextmanager
async def create_dynamodb_client(settings: Settings) -> AsyncIterator[Any]:
    session = aioboto3.Session()
    kwargs: dict[str, Any] = {
        "region_name": settings.aws_region,
        "config": Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=2, read_timeout=5),
    }
    if settings.dynamodb_endpoint_url:
        kwargs["endpoint_url"] = settings.dynamodb_endpoint_url
        # A local server accepts any credentials; real AWS takes them from the usual chain.
        kwargs.setdefault("aws_access_key_id", "local")
        kwargs.setdefault("aws_secret_access_key", "local")  # noqa: S106
    async with session.client("dynamodb", **kwargs) as client:
        yield client


def _key_schema(hash_key: str, range_key: str | None) -> list[dict[str, str]]:
    schema = [{"AttributeName": hash_key, "KeyType": "HASH"}]
    if range_key:
        schema.append({"AttributeName": range_key, "KeyType": "RANGE"})
    return schema


def _index(name: str, hash_key: str, range_key: str | None) -> dict[str, Any]:
    return {"IndexName": name, "KeySchema": _key_schema(hash_key, range_key), "Projection": {"ProjectionType": "ALL"}}


def _attributes(keys: set[str | None]) -> list[dict[str, str]]:
    return [{"AttributeName": a, "AttributeType": "S"} for a in sorted(k for k in keys if k)]


async def _create_table(client: Any, spec: TableSpec) -> None:
    keys: set[str | None] = {spec.hash_key, spec.range_key}
    for _, hash_key, range_key in spec.indexes:
        keys.update((hash_key, range_key))
    kwargs: dict[str, Any] = {
        "TableName": spec.name,
        "KeySchema": _key_schema(spec.hash_key, spec.range_key),
        "AttributeDefinitions": _attributes(keys),
        "BillingMode": "PAY_PER_REQUEST",
    }
    if spec.indexes:
        kwargs["GlobalSecondaryIndexes"] = [_index(*index) for index in spec.indexes]
    await client.create_table(**kwargs)
    if spec.ttl_attribute:
        await client.update_time_to_live(
            TableName=spec.name,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": spec.ttl_attribute},
        )


async def _add_missing_indexes(client: Any, spec: TableSpec, wait_s: float = 600.0) -> list[str]:
    """Indexes added to a table after it was created; DynamoDB builds one at a time, so wait for each."""
    added = []
    for name, hash_key, range_key in spec.indexes:
        table = (await client.describe_table(TableName=spec.name))["Table"]
        if name in {i["IndexName"] for i in table.get("GlobalSecondaryIndexes", [])}:
            continue
        await client.update_table(
            TableName=spec.name,
            AttributeDefinitions=_attributes({hash_key, range_key}),
            GlobalSecondaryIndexUpdates=[{"Create": _index(name, hash_key, range_key)}],
        )
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            table = (await client.describe_table(TableName=spec.name))["Table"]
            status = {i["IndexName"]: i.get("IndexStatus") for i in table.get("GlobalSecondaryIndexes", [])}
            if status.get(name, "ACTIVE") == "ACTIVE":
                break
            await asyncio.sleep(2)
        added.append(f"{spec.name}:{name}")
    return added


async def ensure_tables(client: Any, specs: list[TableSpec]) -> list[str]:
    """Create the tables that do not exist yet (on-demand billing) and add indexes that a newer version
    declares to tables that do; returns the names of what was created."""
    existing: set[str] = set()
    paginator = client.get_paginator("list_tables")
    async for page in paginator.paginate():
        existing.update(page["TableNames"])
    created = []
    for spec in specs:
        if spec.name in existing:
            created.extend(await _add_missing_indexes(client, spec))
        else:
            await _create_table(client, spec)
            created.append(spec.name)
    return created
