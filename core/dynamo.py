"""A thin async DynamoDB table helper over aioboto3's low-level client, with type marshalling."""

from __future__ import annotations

import contextlib
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


async def query_all(client: Any, **kwargs: Any) -> AsyncIterator[dict[str, Any]]:
    """Every item a query matches, page by page: a bare query stops silently at 1 MB."""
    while True:
        response = await client.query(**kwargs)
        for item in response.get("Items", []):
            yield item
        last = response.get("LastEvaluatedKey")
        if not last:
            return
        kwargs["ExclusiveStartKey"] = last


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


async def ensure_tables(client: Any, specs: list[TableSpec]) -> list[str]:
    """Create the tables that do not exist yet (on-demand billing); returns the names created."""
    existing: set[str] = set()
    paginator = client.get_paginator("list_tables")
    async for page in paginator.paginate():
        existing.update(page["TableNames"])
    created = []
    for spec in specs:
        if spec.name in existing:
            await _add_missing_indexes(client, spec)
            continue
        attributes = {spec.hash_key}
        schema = [{"AttributeName": spec.hash_key, "KeyType": "HASH"}]
        if spec.range_key:
            attributes.add(spec.range_key)
            schema.append({"AttributeName": spec.range_key, "KeyType": "RANGE"})
        gsis = []
        for index_name, hash_key, range_key in spec.indexes:
            attributes.add(hash_key)
            key_schema = [{"AttributeName": hash_key, "KeyType": "HASH"}]
            if range_key:
                attributes.add(range_key)
                key_schema.append({"AttributeName": range_key, "KeyType": "RANGE"})
            gsis.append({"IndexName": index_name, "KeySchema": key_schema, "Projection": {"ProjectionType": "ALL"}})
        kwargs: dict[str, Any] = {
            "TableName": spec.name,
            "KeySchema": schema,
            "AttributeDefinitions": [{"AttributeName": a, "AttributeType": "S"} for a in sorted(attributes)],
            "BillingMode": "PAY_PER_REQUEST",
        }
        if gsis:
            kwargs["GlobalSecondaryIndexes"] = gsis
        await client.create_table(**kwargs)
        if spec.ttl_attribute:
            await client.update_time_to_live(
                TableName=spec.name,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": spec.ttl_attribute},
            )
        created.append(spec.name)
    return created


async def _add_missing_indexes(client: Any, spec: TableSpec) -> None:
    """An index added to a spec after its table was made (e.g. the seed tables' token-index) is created
    on the running table; DynamoDB builds it in the background."""
    description = (await client.describe_table(TableName=spec.name))["Table"]
    have = {i["IndexName"] for i in description.get("GlobalSecondaryIndexes", [])}
    for index_name, hash_key, range_key in spec.indexes:
        if index_name in have:
            continue
        key_schema = [{"AttributeName": hash_key, "KeyType": "HASH"}]
        attributes = [{"AttributeName": hash_key, "AttributeType": "S"}]
        if range_key:
            key_schema.append({"AttributeName": range_key, "KeyType": "RANGE"})
            attributes.append({"AttributeName": range_key, "AttributeType": "S"})
        create: dict[str, Any] = {
            "IndexName": index_name,
            "KeySchema": key_schema,
            "Projection": {"ProjectionType": "ALL"},
        }
        if description.get("BillingModeSummary", {}).get("BillingMode") != "PAY_PER_REQUEST":
            create["ProvisionedThroughput"] = {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}
        await client.update_table(
            TableName=spec.name,
            AttributeDefinitions=attributes,
            GlobalSecondaryIndexUpdates=[{"Create": create}],
        )
