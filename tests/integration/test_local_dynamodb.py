"""The local DynamoDB (dev.dynamodb) keeps every acknowledged write across kill -9 and Ctrl-C, on the
product's own tables (their keys, indexes and TTL), and compacts its journal at start."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from core.dynamo import create_dynamodb_client, ensure_tables
from core.settings import Settings, load_settings
from dev.servers import free_port, start_dynamodb, stop
from marketplace.tables import table_specs


def _item(spec: Any, n: int) -> dict[str, Any]:
    """An item of this table with every key attribute (table and index keys) set."""
    names = {spec.hash_key, *(k for k in [spec.range_key] if k)}
    for _, hash_key, range_key in spec.indexes:
        names |= {hash_key, *(k for k in [range_key] if k)}
    return {name: {"S": f"{name}-{n}"} for name in sorted(names)}


def _key(spec: Any, item: dict[str, Any]) -> dict[str, Any]:
    return {k: item[k] for k in (spec.hash_key, spec.range_key) if k}


async def _write(settings: Settings) -> dict[str, list[dict[str, Any]]]:
    """Writes of every kind to every table; returns the items each table must hold afterwards."""
    kept: dict[str, list[dict[str, Any]]] = {}
    specs = table_specs(settings)
    async with create_dynamodb_client(settings) as client:
        await ensure_tables(client, specs)
        for spec in specs:
            first, second, gone = _item(spec, 1), _item(spec, 2), _item(spec, 3)
            await client.put_item(TableName=spec.name, Item=first)
            await client.transact_write_items(
                TransactItems=[
                    {"Put": {"TableName": spec.name, "Item": second}},
                    {"Put": {"TableName": spec.name, "Item": gone}},
                ]
            )
            for _ in range(3):  # like the usage counters: an ADD per use
                await client.update_item(
                    TableName=spec.name,
                    Key=_key(spec, first),
                    UpdateExpression="ADD uses :one",
                    ExpressionAttributeValues={":one": {"N": "1"}},
                )
            await client.delete_item(TableName=spec.name, Key=_key(spec, gone))
            with pytest.raises(ClientError, match="ConditionalCheckFailed"):
                await client.put_item(
                    TableName=spec.name,
                    Item={**second, "overwritten": {"BOOL": True}},
                    ConditionExpression="attribute_not_exists(#k)",
                    ExpressionAttributeNames={"#k": spec.hash_key},
                )
            kept[spec.name] = [{**first, "uses": {"N": "3"}}, second]
    return kept


async def _check(settings: Settings, kept: dict[str, list[dict[str, Any]]]) -> None:
    specs = {spec.name: spec for spec in table_specs(settings)}
    async with create_dynamodb_client(settings) as client:
        assert set(kept) <= set((await client.list_tables())["TableNames"])
        for name, items in kept.items():
            spec = specs[name]
            scanned = (await client.scan(TableName=name))["Items"]
            assert sorted(scanned, key=str) == sorted(items, key=str), name
            for index_name, hash_key, _ in spec.indexes:
                found = await client.query(
                    TableName=name,
                    IndexName=index_name,
                    KeyConditionExpression="#h = :h",
                    ExpressionAttributeNames={"#h": hash_key},
                    ExpressionAttributeValues={":h": items[1][hash_key]},
                )
                assert found["Items"] == [items[1]], (name, index_name)
            if spec.ttl_attribute:
                ttl = (await client.describe_time_to_live(TableName=name))["TimeToLiveDescription"]
                assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": spec.ttl_attribute}


async def test_acknowledged_writes_survive_kill_9_then_ctrl_c(tmp_path: Path) -> None:
    port = free_port()
    data = tmp_path / "dynamodb"
    settings = load_settings({"DYNAMODB_ENDPOINT_URL": f"http://127.0.0.1:{port}", "TABLE_PREFIX": "durable-"})
    server = start_dynamodb(port, data_dir=data, log=tmp_path / "dynamodb.log")
    try:
        kept = await _write(settings)
        written = (data / "journal.jsonl").read_text().count("\n")
        os.kill(server.pid, signal.SIGKILL)
        server.wait()
        # A write the crash cut off mid-line was never answered: the torn line is dropped at start.
        with open(data / "journal.jsonl", "a") as journal:
            journal.write('{"t": "PutItem", "r": "us-east-1", "b": "{\\"TableName')
        server = start_dynamodb(port, data_dir=data, log=tmp_path / "dynamodb.log")
        await _check(settings, kept)
        compacted = (data / "journal.jsonl").read_text().count("\n")
        assert compacted < written  # one CreateTable, TTL and PutItem per item, not the whole history
        server.send_signal(signal.SIGINT)  # Ctrl-C
        server.wait(10)
        server = start_dynamodb(port, data_dir=data, log=tmp_path / "dynamodb.log")
        await _check(settings, kept)
    finally:
        stop(server)
    assert "torn last journal line" in (tmp_path / "dynamodb.log").read_text()


async def test_without_a_data_folder_nothing_is_kept() -> None:
    port = free_port()
    settings = load_settings({"DYNAMODB_ENDPOINT_URL": f"http://127.0.0.1:{port}", "TABLE_PREFIX": "memory-"})
    server = start_dynamodb(port)
    try:
        await _write(settings)
    finally:
        stop(server)
    server = start_dynamodb(port)
    try:
        async with create_dynamodb_client(settings) as client:
            assert (await client.list_tables())["TableNames"] == []
    finally:
        stop(server)
