"""Outgoing mail behind one interface (dev mailbox, SMTP via aiosmtplib, SES via aioboto3), and a durable
outbox that sends each event's message once, however often a webhook repeats or a worker retries, and
retries a failed send later instead of losing it."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Protocol

import msgspec
from boto3.dynamodb.types import Binary

from core.dynamo import from_item, query_all, to_item, values
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


AttachmentRenderer = Callable[[str], Awaitable[Attachment]]
LEASE_S = 120  # a claimed send that has not finished by then is due again (its sender died)
MAX_BACKOFF_S = 3600.0


class Outbox:
    """Durable outgoing mail: each event key is claimed once in DynamoDB, then delivered, retried with
    backoff until it is sent (never dropped), and marked sent so it is never sent again.

    A row is `pending` (in the due-index, by due_at) until a sender claims it (`sending`, due again
    after a lease) and finishes it: `sent`, or back to `pending` later. Attachments can be named by
    reference ("invoice:<order id>") and are made at delivery by a registered renderer, so a message is
    queued even when its PDF cannot be rendered yet. Only a sender that dies between the mail server's
    acceptance and its own `sent` write can send a message twice.
    """

    def __init__(self, dynamodb: Any, settings: Settings, mailer: Mailer) -> None:
        self.dynamodb = dynamodb
        self.table = settings.table("outbox")
        self.mailer = mailer
        self.retry_base_s = settings.mail_retry_base_s
        self.page_size = settings.dynamodb_page_size or None
        self.renderers: dict[str, AttachmentRenderer] = {}

    def register(self, kind: str, renderer: AttachmentRenderer) -> None:
        """Attachments named "<kind>:<ref>" are made by `renderer(ref)` when the message goes out."""
        self.renderers[kind] = renderer

    async def send_once(
        self,
        key: str,
        to: str,
        subject: str,
        text: str,
        attachments: list[Attachment] | None = None,
        *,
        attach: list[str] | None = None,
        deliver_now: bool = True,
    ) -> bool:
        """Queue this event's message (once per key) and, unless told not to, try to deliver it now.
        True if this call queued it; a failed delivery stays queued for `deliver_due`, it does not raise."""
        if not await self.enqueue(key, to, subject, text, attachments, attach=attach):
            return False  # this event's message went out already (or is queued)
        if not deliver_now:
            return True
        try:
            await self.deliver(key)
        except Exception as exc:  # queued: the poller retries it
            log.warning("sending %s failed (%s); queued for retry", key.split(":", 1)[0], type(exc).__name__)
        return True

    async def enqueue(
        self,
        key: str,
        to: str,
        subject: str,
        text: str,
        attachments: list[Attachment] | None = None,
        *,
        attach: list[str] | None = None,
    ) -> bool:
        now = time.time()
        row = {
            "message_key": key,
            "state": "pending",
            "queue": "pending",
            "due_at": _due(now),
            "to": to,
            "subject": subject,
            "text": text,
            "attach": attach or None,
            "inline": [msgspec.to_builtins(a, builtin_types=(bytes,)) for a in attachments or []] or None,
            "attempts": 0,
            "created_at": int(now),
            "expires_at": int(now) + 400 * 86400,
        }
        try:
            await self.dynamodb.put_item(
                TableName=self.table, Item=to_item(row), ConditionExpression="attribute_not_exists(message_key)"
            )
        except self.dynamodb.exceptions.ConditionalCheckFailedException:
            return False
        return True

    async def _claim(self, key: str, now: float) -> dict[str, Any] | None:
        try:
            response = await self.dynamodb.update_item(
                TableName=self.table,
                Key={"message_key": {"S": key}},
                UpdateExpression="SET #s = :sending, due_at = :lease, attempts = attempts + :one",
                ConditionExpression="#q = :pending AND due_at <= :now",
                ExpressionAttributeNames={"#s": "state", "#q": "queue"},
                ExpressionAttributeValues=values(
                    sending="sending", lease=_due(now + LEASE_S), one=1, pending="pending", now=_due(now)
                ),
                ReturnValues="ALL_NEW",
            )
        except self.dynamodb.exceptions.ConditionalCheckFailedException:
            return None  # sent, not due yet, or another sender holds it
        return from_item(response["Attributes"])

    async def _attachments(self, row: dict[str, Any]) -> list[Attachment]:
        found = [
            Attachment(filename=a["filename"], content_type=a["content_type"], data=_bytes(a["data"]))
            for a in row.get("inline") or []
        ]
        for name in row.get("attach") or []:
            kind, _, ref = str(name).partition(":")
            if kind not in self.renderers:
                raise LookupError(f"no renderer for {kind} attachments in this process")
            found.append(await self.renderers[kind](ref))
        return found

    async def deliver(self, key: str) -> bool:
        """Send one due message; True if it went out now. A failure reschedules it and re-raises."""
        now = time.time()
        row = await self._claim(key, now)
        if row is None:
            return False
        attempts = int(row["attempts"])
        try:
            await self.mailer.send(row["to"], row["subject"], row["text"], await self._attachments(row))
        except Exception as exc:
            backoff = min(MAX_BACKOFF_S, self.retry_base_s * 2 ** (attempts - 1))
            await self._finish(
                key, attempts, "SET #s = :pending, due_at = :due, last_error = :error", now + backoff, exc
            )
            raise
        await self._finish(key, attempts, "SET #s = :sent, sent_at = :t REMOVE #q, due_at", now, None)
        return True

    async def _finish(self, key: str, attempts: int, update: str, when: float, error: Exception | None) -> None:
        named: dict[str, Any] = {"mine": attempts}
        if error is None:
            named.update(sent="sent", t=int(when))
        else:
            named.update(pending="pending", due=_due(when), error=f"{type(error).__name__}: {error}"[:300])
        try:
            await self.dynamodb.update_item(
                TableName=self.table,
                Key={"message_key": {"S": key}},
                UpdateExpression=update,
                ConditionExpression="attempts = :mine",  # our claim, not a later one after our lease ran out
                ExpressionAttributeNames={"#s": "state", **({"#q": "queue"} if error is None else {})},
                ExpressionAttributeValues=values(**named),
            )
        except self.dynamodb.exceptions.ConditionalCheckFailedException:
            log.warning("outbox %s: claim lost before it finished", key.split(":", 1)[0])

    async def due(self, now: float | None = None) -> list[str]:
        """Keys of the messages waiting to be sent whose time has come, oldest first."""
        items = await query_all(
            self.dynamodb,
            page_size=self.page_size,
            TableName=self.table,
            IndexName="due-index",
            KeyConditionExpression="#q = :pending AND due_at <= :now",
            ExpressionAttributeNames={"#q": "queue"},
            ExpressionAttributeValues=values(pending="pending", now=_due(time.time() if now is None else now)),
        )
        return [str(i["message_key"]) for i in items]

    async def deliver_due(self) -> int:
        """Send every due message once (the payment poller calls this each round); returns how many went."""
        sent = 0
        for key in await self.due():
            try:
                sent += await self.deliver(key)
            except Exception as exc:
                log.warning("retrying %s failed (%s); later again", key.split(":", 1)[0], type(exc).__name__)
        return sent

    async def state(self, key: str) -> dict[str, Any] | None:
        response = await self.dynamodb.get_item(
            TableName=self.table, Key={"message_key": {"S": key}}, ConsistentRead=True
        )
        return from_item(response["Item"]) if "Item" in response else None


def _due(epoch_s: float) -> str:
    return f"{int(epoch_s * 1000):013d}"


def _bytes(value: Any) -> bytes:
    return bytes(value.value) if isinstance(value, Binary) else bytes(value)
