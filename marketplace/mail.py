"""Outgoing mail: the dev mailbox (files under MAIL_DIR, shown at /dev/mailbox) behind one interface."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Protocol

import msgspec


class Message(msgspec.Struct):
    to: str
    subject: str
    text: str
    sent_at: float


class Mailer(Protocol):
    async def send(self, to: str, subject: str, text: str) -> None: ...


class DevMailbox:
    """Keeps every message as a JSON file; newest first when listed."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    async def send(self, to: str, subject: str, text: str) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        message = Message(to=to, subject=subject, text=text, sent_at=time.time())
        name = f"{time.time_ns()}.json"
        (self.directory / name).write_bytes(msgspec.json.encode(message))

    def messages(self, to: str | None = None) -> list[Message]:
        if not self.directory.exists():
            return []
        found = []
        for path in sorted(self.directory.glob("*.json"), reverse=True):
            message = msgspec.convert(json.loads(path.read_text()), Message)
            if to is None or message.to == to.strip().lower():
                found.append(message)
        return found
