"""The usage table in DynamoDB, the system of record for counts: merged by taking the larger value."""

from __future__ import annotations

from typing import Any

from core.dynamo import TableSpec, values


def usage_table_spec(table_name: str) -> TableSpec:
    return TableSpec(name=table_name, hash_key="subject", range_key="period")


class UsageStore:
    def __init__(self, client: Any, table_name: str) -> None:
        self.client = client
        self.table = table_name

    async def get(self, subject: str, period: str) -> tuple[int, int]:
        response = await self.client.get_item(
            TableName=self.table,
            Key={"subject": {"S": subject}, "period": {"S": period}},
            ConsistentRead=True,
        )
        item = response.get("Item")
        if not item:
            return 0, 0
        return int(item.get("consumed", {}).get("N", 0)), int(item.get("refunded", {}).get("N", 0))

    async def merge_max(self, subject: str, solution_id: str, period: str, consumed: int, refunded: int) -> None:
        """Write absolute counts so that replays and reorderings do no harm: never lower either one."""
        client = self.client
        for _ in range(5):
            current_consumed, current_refunded = await self.get(subject, period)
            new_consumed = max(consumed, current_consumed)
            new_refunded = max(refunded, current_refunded)
            if (new_consumed, new_refunded) == (current_consumed, current_refunded) and current_consumed:
                return
            try:
                await client.update_item(
                    TableName=self.table,
                    Key={"subject": {"S": subject}, "period": {"S": period}},
                    UpdateExpression="SET #c = :c, #r = :r, solution_id = :s",
                    ConditionExpression="attribute_not_exists(#c) OR (#c = :oc AND #r = :orf)",
                    ExpressionAttributeNames={"#c": "consumed", "#r": "refunded"},
                    ExpressionAttributeValues=values(
                        c=new_consumed,
                        r=new_refunded,
                        s=solution_id,
                        oc=current_consumed,
                        orf=current_refunded,
                    ),
                )
                return
            except client.exceptions.ConditionalCheckFailedException:
                continue
        raise RuntimeError(f"could not merge usage for {subject} {period} after 5 tries")
