"""`make admin EMAIL=...` (python -m marketplace.admin EMAIL): makes an existing account an admin.

The role can never be chosen at sign-up; this command, run by an operator, is the only way in.
"""

from __future__ import annotations

import asyncio
import sys

from redis.asyncio import Redis

from core.dynamo import create_dynamodb_client
from core.settings import load_settings
from marketplace.users import UserStore


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m marketplace.admin EMAIL", file=sys.stderr)
        return 2
    settings = load_settings()

    async def run() -> bool:
        redis = Redis.from_url(settings.redis_url)
        try:
            async with create_dynamodb_client(settings) as client:
                return await UserStore(client, redis, settings).set_role(args[0], "admin") is not None
        finally:
            await redis.aclose()

    if not asyncio.run(run()):
        print(f"no account for {args[0]}: register it first", file=sys.stderr)
        return 1
    print(f"{args[0]} is now an admin", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
