"""`python -m dev.dynamodb -p PORT [--data DIR]`: moto's DynamoDB server for `make up` and the tests, one
request at a time, and durable when given a data folder.

moto's backends are not thread-safe, so under its threaded server two conditional writes or transactions
could interleave; real DynamoDB never lets them. A lock around the app restores that.

moto keeps tables in memory. With `--data`, every write that succeeded is appended to `journal.jsonl` and
fsynced before its answer goes out, and the journal is replayed at start, so an acknowledged write survives
Ctrl-C and `kill -9`. A write cut short by a crash was never acknowledged: its torn last line is dropped.
At start and every COMPACT_EVERY writes the journal is rewritten as a snapshot (tables, TTL, items 25 to
a request), so a start replays what the tables hold, not their history.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import run_simple
from werkzeug.test import EnvironBuilder

from core.logs import configure

log = logging.getLogger("dev.dynamodb")
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
TARGET_PREFIX = "DynamoDB_20120810."
WRITES = frozenset(
    {
        "CreateTable",
        "DeleteTable",
        "UpdateTable",
        "UpdateTimeToLive",
        "PutItem",
        "UpdateItem",
        "DeleteItem",
        "BatchWriteItem",
        "TransactWriteItems",
        "TagResource",
        "UntagResource",
    }
)
COMPACT_EVERY = 10_000
BATCH_WRITE_MAX = 25  # DynamoDB's limit per BatchWriteItem
_REGION = re.compile(r"Credential=[^/]*/[^/]*/([^/]+)/")


def region_of(environ: dict[str, Any]) -> str:
    match = _REGION.search(environ.get("HTTP_AUTHORIZATION", ""))
    return match.group(1) if match else "us-east-1"


class Journal:
    """An append-only file of the writes that succeeded, each line fsynced before the write is answered."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self.appended = 0

    def append(self, target: str, region: str, body: bytes) -> None:
        line = json.dumps({"t": target, "r": region, "b": body.decode()}) + "\n"
        os.write(self._fd, line.encode())
        os.fsync(self._fd)
        self.appended += 1

    def records(self) -> Iterator[tuple[str, str, bytes]]:
        data = self.path.read_bytes()
        lines = data.split(b"\n")
        if lines and lines[-1]:
            log.warning("dropping a torn last journal line (%d bytes): a write the crash cut short", len(lines[-1]))
        for line in lines[:-1]:
            record = json.loads(line)
            yield record["t"], record["r"], record["b"].encode()

    def replace(self, records: Iterable[tuple[str, str, bytes]]) -> int:
        """Atomically swap the journal for `records` (a snapshot): written, fsynced, then renamed over it."""
        temporary = self.path.with_suffix(".tmp")
        count = 0
        with open(temporary, "wb") as out:
            for target, region, body in records:
                out.write((json.dumps({"t": target, "r": region, "b": body.decode()}) + "\n").encode())
                count += 1
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, self.path)
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
        os.close(self._fd)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        self.appended = 0
        return count


class LocalDynamo:
    """moto's WSGI app behind one lock, journalling its successful writes when given a journal."""

    def __init__(self, app: WSGIApp, journal: Journal | None = None) -> None:
        self.app = app
        self.journal = journal
        self.regions: set[str] = set()
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        with self.lock:
            body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            environ["wsgi.input"] = io.BytesIO(body)
            answer: list[Any] = []

            def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
                answer[:] = [status, headers, exc_info]

            output = list(self.app(environ, capture))  # the whole body is produced inside the lock
            target = environ.get("HTTP_X_AMZ_TARGET", "").removeprefix(TARGET_PREFIX)
            if self.journal is not None and target in WRITES and answer[0].startswith("200"):
                region = region_of(environ)
                self.regions.add(region)
                self.journal.append(target, region, body)
                if self.journal.appended >= COMPACT_EVERY:
                    self.compact()
        start_response(*answer)
        return output

    def call(self, target: str, region: str, payload: dict[str, Any] | bytes) -> tuple[str, dict[str, Any]]:
        """One request straight into the app (no socket, no journal): replay and snapshots use it."""
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        headers = {
            "X-Amz-Target": TARGET_PREFIX + target,
            "Content-Type": "application/x-amz-json-1.0",
            "Authorization": f"AWS4-HMAC-SHA256 Credential=local/20240101/{region}/dynamodb/aws4_request, "
            "SignedHeaders=host, Signature=0",
        }
        environ = EnvironBuilder(path="/", method="POST", headers=list(headers.items()), data=data).get_environ()
        answer: list[str] = []
        output = b"".join(self.app(environ, lambda status, *_: answer.append(status)))
        return answer[0], json.loads(output or b"{}")

    def replay(self) -> int:
        assert self.journal is not None
        count = 0
        for target, region, body in self.journal.records():
            status, result = self.call(target, region, body)
            if not status.startswith("200"):
                log.warning("replayed %s answered %s: %s", target, status, result)
            self.regions.add(region)
            count += 1
        return count

    def compact(self) -> int:
        """Rewrite the journal as the shortest list of writes that rebuilds today's tables."""
        assert self.journal is not None
        return self.journal.replace(list(self._snapshot()))

    def _snapshot(self) -> Iterator[tuple[str, str, bytes]]:
        for region in sorted(self.regions):
            for name in self.call("ListTables", region, {})[1].get("TableNames", []):
                yield from self._table_snapshot(region, name)

    def _table_snapshot(self, region: str, name: str) -> Iterator[tuple[str, str, bytes]]:
        table = self.call("DescribeTable", region, {"TableName": name})[1]["Table"]
        yield "CreateTable", region, json.dumps(create_table_request(table)).encode()
        ttl = self.call("DescribeTimeToLive", region, {"TableName": name})[1].get("TimeToLiveDescription", {})
        if ttl.get("TimeToLiveStatus") == "ENABLED":
            spec = {"Enabled": True, "AttributeName": ttl["AttributeName"]}
            yield "UpdateTimeToLive", region, json.dumps({"TableName": name, "TimeToLiveSpecification": spec}).encode()
        scan: dict[str, Any] = {"TableName": name}
        while True:  # items in BatchWriteItem requests of 25: replaying a request costs far more than an item
            page = self.call("Scan", region, scan)[1]
            items = page.get("Items", [])
            for start in range(0, len(items), BATCH_WRITE_MAX):
                puts = [{"PutRequest": {"Item": item}} for item in items[start : start + BATCH_WRITE_MAX]]
                yield "BatchWriteItem", region, json.dumps({"RequestItems": {name: puts}}).encode()
            if not page.get("LastEvaluatedKey"):
                return
            scan["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def create_table_request(table: dict[str, Any]) -> dict[str, Any]:
    """The CreateTable request that makes a table like DescribeTable's `table` (without its items)."""
    billing = table.get("BillingModeSummary", {}).get("BillingMode", "PAY_PER_REQUEST")
    request: dict[str, Any] = {
        "TableName": table["TableName"],
        "KeySchema": table["KeySchema"],
        "AttributeDefinitions": table["AttributeDefinitions"],
        "BillingMode": billing,
    }

    def throughput(source: dict[str, Any]) -> dict[str, Any]:
        given = source.get("ProvisionedThroughput", {})
        return {
            "ReadCapacityUnits": given.get("ReadCapacityUnits", 1),
            "WriteCapacityUnits": given.get("WriteCapacityUnits", 1),
        }

    if billing == "PROVISIONED":
        request["ProvisionedThroughput"] = throughput(table)
    for kind in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
        indexes = []
        for index in table.get(kind, []):
            spec = {k: index[k] for k in ("IndexName", "KeySchema", "Projection")}
            if kind == "GlobalSecondaryIndexes" and billing == "PROVISIONED":
                spec["ProvisionedThroughput"] = throughput(index)
            indexes.append(spec)
        if indexes:
            request[kind] = indexes
    if table.get("StreamSpecification"):
        request["StreamSpecification"] = table["StreamSpecification"]
    return request


def create_local_dynamo(data_dir: Path | None) -> LocalDynamo:
    """The app, with its journal replayed and compacted when a data folder is given."""
    app = LocalDynamo(DomainDispatcherApplication(create_backend_app))
    if data_dir is not None:
        app.journal = Journal(data_dir / "journal.jsonl")
        replayed = app.replay()
        kept = app.compact()
        log.info("replayed %d journalled writes from %s, compacted to %d", replayed, data_dir, kept)
    return app


def main() -> None:
    configure()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # not a line per request
    parser = argparse.ArgumentParser(prog="dev.dynamodb")
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=8001)
    parser.add_argument("--data", type=Path, default=None, help="keep the tables in this folder (a journal)")
    args = parser.parse_args()
    run_simple(args.host, args.port, create_local_dynamo(args.data), threaded=True, use_reloader=False)


if __name__ == "__main__":
    main()
