"""Partner applications: a signed-in user applies; an admin approves (the user becomes a partner) or rejects."""

from __future__ import annotations

import time
import uuid
from typing import Any

import msgspec

from core.dynamo import from_item, to_item, values
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
        pending = [a for a in await self.for_user(user_id) if a.status == "pending"]
        if pending:
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
        await self.dynamodb.put_item(TableName=self.table, Item=to_item(msgspec.to_builtins(application)))
        return application

    async def for_user(self, user_id: str) -> list[Application]:
        response = await self.dynamodb.query(
            TableName=self.table,
            IndexName="user-index",
            KeyConditionExpression="user_id = :u",
            ExpressionAttributeValues=values(u=user_id),
            ScanIndexForward=False,
        )
        return [msgspec.convert(from_item(i), Application) for i in response.get("Items", [])]

    async def by_status(self, status: str) -> list[Application]:
        response = await self.dynamodb.query(
            TableName=self.table,
            IndexName="status-index",
            KeyConditionExpression="#s = :s",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues=values(s=status),
        )
        return [msgspec.convert(from_item(i), Application) for i in response.get("Items", [])]

    async def decide(self, application_id: str, status: str, admin_id: str, reason: str = "") -> Application:
        """Move a pending application to approved or rejected, once."""
        try:
            response = await self.dynamodb.update_item(
                TableName=self.table,
                Key={"application_id": {"S": application_id}},
                UpdateExpression="SET #s = :s, decided_at = :t, decided_by = :by, reason = :r",
                ConditionExpression="attribute_exists(application_id) AND #s = :pending",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues=values(
                    s=status, t=f"{time.time():.6f}", by=admin_id, r=reason, pending="pending"
                ),
                ReturnValues="ALL_NEW",
            )
        except self.dynamodb.exceptions.ConditionalCheckFailedException as exc:
            raise NotFoundError("No pending application with that id.", reason="not_pending") from exc
        return msgspec.convert(from_item(response["Attributes"]), Application)
