"""Runs a background process's loop until SIGINT or SIGTERM, with JSON logs and the settings loaded once."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable

from core.logs import configure
from core.settings import Settings, load_settings


def run_until_signalled(loop_body: Callable[[Settings, asyncio.Event], Awaitable[None]]) -> None:
    settings = load_settings()
    configure(settings.log_level)

    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await loop_body(settings, stop)

    asyncio.run(runner())
