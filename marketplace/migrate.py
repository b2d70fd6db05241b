"""`python -m marketplace.migrate [--dry-run]`: rewrites old email-keyed entitlements into the new format.

Old records (pk "user#<email>") become new ones (pk "user#<uuid>") for the account with that email;
their per-day usage goes into the usage table (merged by maximum, so running twice changes nothing),
and the old record is marked status "migrated". Records whose email has no account are left as they are
and reported. An offline command, so the Scan here is not on a request path.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from core.dynamo import create_dynamodb_client, from_item, to_item, values
from core.settings import Settings, load_settings
from quota.keys import user_subject
from quota.store import UsageStore


@dataclass
class MigrationReport:
    migrated: int = 0
    usage_days: int = 0
    orphans: list[str] = field(default_factory=list)


async def _user_id_for(client: Any, settings: Settings, email: str) -> str | None:
    response = await client.get_item(
        TableName=settings.table("users"), Key={"pk": {"S": f"email#{email}"}}, ConsistentRead=True
    )
    item = response.get("Item")
    return item["user_id"]["S"] if item else None


async def migrate(client: Any, settings: Settings, *, dry_run: bool = False) -> MigrationReport:
    table = settings.table("user-solution-entitlements")
    usage = UsageStore(client, settings.table("usage"))
    report = MigrationReport()
    paginator = client.get_paginator("scan")
    async for page in paginator.paginate(
        TableName=table,
        FilterExpression="attribute_exists(access_tier) AND (attribute_not_exists(#s) OR #s <> :m)",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues=values(m="migrated"),
    ):
        for item in page.get("Items", []):
            old = from_item(item)
            email = str(old["pk"]).removeprefix("user#").strip().lower()
            if "@" not in email:
                continue
            user_id = await _user_id_for(client, settings, email)
            if user_id is None:
                report.orphans.append(email)
                continue
            solution_id = str(old["sk"]).removeprefix("solution#")
            daily = {str(k): int(v) for k, v in ((old.get("usage") or {}).get("daily_usage") or {}).items()}
            last_day = max(daily) if daily else ""
            now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            new = {
                "pk": f"user#{user_id}",
                "sk": old["sk"],
                "accessTier": old.get("access_tier", "registered"),
                "status": old.get("status", "active"),
                "dailyUsage": daily.get(last_day, 0),
                "lastUsageDate": last_day,
                "createdAt": str(old.get("created_at", now)),
                "updatedAt": now,
                "migratedFrom": old["pk"],
            }
            if "pro_until" in old:
                new["proUntil"] = int(old["pro_until"])
            report.migrated += 1
            report.usage_days += len(daily)
            if dry_run:
                continue
            for day, count in daily.items():
                await usage.merge_max(user_subject(user_id, solution_id), solution_id, day, count, 0)
            try:
                await client.put_item(
                    TableName=table, Item=to_item(new), ConditionExpression="attribute_not_exists(pk)"
                )
            except client.exceptions.ConditionalCheckFailedException:
                pass  # a new-format record exists already: it wins, the usage is still merged
            await client.update_item(
                TableName=table,
                Key={"pk": item["pk"], "sk": item["sk"]},
                UpdateExpression="SET #s = :m",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues=values(m="migrated"),
            )
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="marketplace.migrate")
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args(argv)
    settings = load_settings()

    async def run() -> MigrationReport:
        async with create_dynamodb_client(settings) as client:
            return await migrate(client, settings, dry_run=args.dry_run)

    report = asyncio.run(run())
    verb = "would migrate" if args.dry_run else "migrated"
    print(f"{verb} {report.migrated} entitlements ({report.usage_days} days of usage)", file=sys.stderr)
    for email in report.orphans:
        print(f"left alone: no account for {email}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
