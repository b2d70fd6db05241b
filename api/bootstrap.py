"""`python -m api.bootstrap`: creates the DynamoDB tables that are missing and seeds the catalog."""

from __future__ import annotations

import asyncio
import logging

from core.dynamo import create_dynamodb_client, ensure_tables
from core.logs import configure
from core.settings import Settings, load_settings
from marketplace.catalog import seed_solutions
from marketplace.tables import table_specs


async def bootstrap(settings: Settings) -> list[str]:
    async with create_dynamodb_client(settings) as client:
        created = await ensure_tables(client, table_specs(settings))
        await seed_solutions(client, settings)
    return created


def main() -> int:
    settings = load_settings()
    configure(settings.log_level)
    created = asyncio.run(bootstrap(settings))
    logging.getLogger("api").info("tables ready (%d created)", len(created))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
