"""Outgoing mail behind one interface (dev mailbox, SMTP via aiosmtplib, SES via aioboto3), and an outbox
that sends each event's message at most once, however often a webhook repeats or a worker retries."""

from __future__ import annotations

import json
import logging
import time
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Protocol

import msgspec

from core.settings import Settings

log = logging.getLogger("mail")


class Attachment(msgspec.Struct):
    filename: str
    content_type: str
    data: bytes


class Message(msgspec.Struct):
    to: str
    subject: str
    text: str
    sent_at: float
    attachments: list[str] = []


class Mailer(Protocol):
    async def send(self, to: str, subject: str, text: str, attachments: list[Attachment] | None = None) -> None: ...


def build_email(sender: str, to: str, subject: str, text: str, attachments: list[Attachment] | None) -> EmailMessage:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = sender, to, subject
    message.set_content(text)
    for item in attachments or []:
        main, _, sub = item.content_type.partition("/")
        message.add_attachment(item.data, maintype=main, subtype=sub, filename=item.filename)
    return message


class DevMailbox:
    """Keeps every message as a JSON file under MAIL_DIR; newest first when listed."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    async def send(self, to: str, subject: str, text: str, attachments: list[Attachment] | None = None) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        message = Message(
            to=to, subject=subject, text=text, sent_at=time.time(), attachments=[a.filename for a in attachments or []]
        )
        (self.directory / f"{time.time_ns()}.json").write_bytes(msgspec.json.encode(message))

    def messages(self, to: str | None = None) -> list[Message]:
        if not self.directory.exists():
            return []
        found = []
        for path in sorted(self.directory.glob("*.json"), reverse=True):
            message = msgspec.convert(json.loads(path.read_text()), Message)
            if to is None or message.to == to.strip().lower():
                found.append(message)
        return found


class SmtpMailer:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def send(self, to: str, subject: str, text: str, attachments: list[Attachment] | None = None) -> None:
        import aiosmtplib

        s = self.settings
        await aiosmtplib.send(
            build_email(s.mail_from, to, subject, text, attachments),
            hostname=s.smtp_host,
            port=s.smtp_port,
            username=s.smtp_username or None,
            password=s.smtp_password or None,
            start_tls=s.smtp_starttls,
            timeout=10,
        )


class SesMailer:
    """Amazon SES v2 SendEmail with the raw MIME message, so attachments go too."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def send(self, to: str, subject: str, text: str, attachments: list[Attachment] | None = None) -> None:
        import aioboto3

        raw = build_email(self.settings.mail_from, to, subject, text, attachments).as_bytes()
        async with aioboto3.Session().client("sesv2", region_name=self.settings.aws_region) as ses:
            await ses.send_email(Content={"Raw": {"Data": raw}})


def create_mailer(settings: Settings) -> Mailer:
    if settings.mail_provider == "smtp":
        return SmtpMailer(settings)
    if settings.mail_provider == "ses":
        return SesMailer(settings)
    return DevMailbox(settings.mail_dir)


class Outbox:
    """At most one message per event key: the key is claimed in DynamoDB before anything is sent."""

    def __init__(self, dynamodb: Any, settings: Settings, mailer: Mailer) -> None:
        self.dynamodb = dynamodb
        self.table = settings.table("outbox")
        self.mailer = mailer

    async def send_once(
        self, key: str, to: str, subject: str, text: str, attachments: list[Attachment] | None = None
    ) -> bool:
        item_key = {"message_key": {"S": key}}
        try:
            await self.dynamodb.put_item(
                TableName=self.table,
                ConditionExpression="attribute_not_exists(message_key)",
                Item={
                    **item_key,
                    "state": {"S": "sending"},
                    "to": {"S": to},
                    "subject": {"S": subject},
                    "created_at": {"N": str(int(time.time()))},
                    "expires_at": {"N": str(int(time.time()) + 400 * 86400)},
                },
            )
        except self.dynamodb.exceptions.ConditionalCheckFailedException:
            return False  # this event's message went out already (or is going out now)
        try:
            await self.mailer.send(to, subject, text, attachments)
        except Exception:
            # Nothing left: release the claim so a later retry of the same event can send it.
            await self.dynamodb.delete_item(TableName=self.table, Key=item_key)
            log.exception("sending %s failed", key.split(":", 1)[0])
            raise
        await self.dynamodb.update_item(
            TableName=self.table,
            Key=item_key,
            UpdateExpression="SET #s = :sent",
            ExpressionAttributeNames={"#s": "state"},
            ExpressionAttributeValues={":sent": {"S": "sent"}},
        )
        return True
