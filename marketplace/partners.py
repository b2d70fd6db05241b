"""Partner applications: a signed-in user applies; an admin approves (the user becomes a partner) or rejects."""

from __future__ import annotations

import time
import uuid
from typing import Any

import msgspec

from core.dynamo import from_item, query_all, to_item, values
from core.errors import ConflictError, NotFoundError
from core.settings import Settings


class Application(msgspec.Struct):
    application_id: str
    user_id: str
    email: str
    company: str
    website: str
    description: str
    status: str  # pending | approved | rejected
    created_at: str
    decided_at: str = ""
    decided_by: str = ""
    reason: str = ""


class PartnerStore:
    def __init__(self, dynamodb: Any, settings: Settings) -> None:
        self.dynamodb = dynamodb
        self.table = settings.table("partner-applications")

    async def apply(self, user_id: str, email: str, company: str, website: str, description: str) -> Application:
        """One application under review per user: a lock row is written with it in one conditional
        transaction, so concurrent requests cannot both pass the check."""
        if any(a.status == "pending" for a in await self.for_user(user_id)):  # made before lock rows existed
            raise ConflictError("You already have an application under review.", reason="application_pending")
        application = Application(
            application_id=uuid.uuid4().hex,
            user_id=user_id,
            email=email,
            company=company,
            website=website,
            description=description,
            status="pending",
            created_at=f"{time.time():.6f}",
        )
        try:
            await self.dynamodb.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self.table,
                            "Item": to_item(
                                {"application_id": _lock_id(user_id), "pending": application.application_id}
                            ),
                            "ConditionExpression": "attribute_not_exists(application_id)",
                        }
                    },
                    {"Put": {"TableName": self.table, "Item": to_item(msgspec.to_builtins(application))}},
                ]
            )
        except self.dynamodb.exceptions.TransactionCanceledException as exc:
            raise ConflictError("You already have an application under review.", reason="application_pending") from exc
        return application

    async def for_user(self, user_id: str) -> list[Application]:
        items = await query_all(
            self.dynamodb,
            TableName=self.table,
            IndexName="user-index",
            KeyConditionExpression="user_id = :u",
            ExpressionAttributeValues=values(u=user_id),
            ScanIndexForward=False,
        )
        return [msgspec.convert(i, Application) for i in items]

    async def by_status(self, status: str) -> list[Application]:
        items = await query_all(
            self.dynamodb,
            TableName=self.table,
            IndexName="status-index",
            KeyConditionExpression="#s = :s",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues=values(s=status),
        )
        return [msgspec.convert(i, Application) for i in items]

    async def decide(self, application_id: str, status: str, admin_id: str, reason: str = "") -> Application:
        """Move a pending application to approved or rejected, once, releasing the applicant's lock."""
        response = await self.dynamodb.get_item(
            TableName=self.table, Key={"application_id": {"S": application_id}}, ConsistentRead=True
        )
        if "Item" not in response or "user_id" not in response["Item"]:
            raise NotFoundError("No pending application with that id.", reason="not_pending")
        user_id = response["Item"]["user_id"]["S"]
        try:
            await self.dynamodb.transact_write_items(
                TransactItems=[
                    {
                        "Update": {
                            "TableName": self.table,
                            "Key": {"application_id": {"S": application_id}},
                            "UpdateExpression": "SET #s = :s, decided_at = :t, decided_by = :by, reason = :r",
                            "ConditionExpression": "attribute_exists(application_id) AND #s = :pending",
                            "ExpressionAttributeNames": {"#s": "status"},
                            "ExpressionAttributeValues": values(
                                s=status, t=f"{time.time():.6f}", by=admin_id, r=reason, pending="pending"
                            ),
                        }
                    },
                    {"Delete": {"TableName": self.table, "Key": {"application_id": {"S": _lock_id(user_id)}}}},
                ]
            )
        except self.dynamodb.exceptions.TransactionCanceledException as exc:
            raise NotFoundError("No pending application with that id.", reason="not_pending") from exc
        response = await self.dynamodb.get_item(
            TableName=self.table, Key={"application_id": {"S": application_id}}, ConsistentRead=True
        )
        return msgspec.convert(from_item(response["Item"]), Application)


def _lock_id(user_id: str) -> str:
    return f"pending#{user_id}"
