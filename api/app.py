"""create_app(): the Litestar gateway, its lifespan-managed clients and its routes."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
from litestar import Litestar
from litestar.config.response_cache import ResponseCacheConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.logging.config import LoggingConfig
from litestar.openapi import OpenAPIConfig
from litestar.static_files import create_static_files_router

from api.cors import cors_middleware_factory
from api.errors import EXCEPTION_HANDLERS, document_errors
from api.observability import metrics, observability_middleware
from api.routes import accounts, health, marketplace, pages, payments, search, validate
from api.state import Services
from core.connections import open_gateway_redis
from core.dynamo import create_dynamodb_client
from core.logs import configure
from core.search_sessions import READ_BLOCK_MS, SearchSessions
from core.settings import Settings, load_settings
from core.stream_relay import StreamRelay
from marketplace.cognito import CognitoVerifier
from marketplace.entitlements import EntitlementStore
from marketplace.mail import Outbox, create_mailer
from marketplace.sessions import IpHasher, SessionStore
from marketplace.tokens import TokenDirectory, TokenService
from marketplace.users import UserStore
from payments.reconcile import Reconciler, create_phonepe
from quota.engine import QuotaEngine
from quota.store import UsageStore

FRONTEND = Path(__file__).resolve().parents[1] / "frontend"
log = logging.getLogger("api")


async def _write_last_used(services: Services, every_s: float = 5.0) -> None:
    while True:
        await asyncio.sleep(every_s)
        try:
            await services.tokens.write_last_used()
        except Exception as exc:  # DynamoDB briefly away: the times are only informative
            log.warning("could not record token last-use times: %s", type(exc).__name__)


async def _sweep_searches(services: Services, every_s: float = 2.0) -> None:
    """End (and refund) searches whose worker died, whether or not anyone is listening."""
    while True:
        await asyncio.sleep(every_s)
        try:
            ended = await services.searches.sweep()
            if ended:
                log.warning("ended %d searches whose worker stopped", ended)
        except Exception as exc:  # Redis briefly away: the next round sweeps
            log.warning("search sweep failed: %s", type(exc).__name__)


async def _stop(task: asyncio.Task[None]) -> None:
    """Cancel a background task and let it finish its clean-up before the clients close."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or load_settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            redis, queue = await open_gateway_redis(settings)
            stack.push_async_callback(queue.aclose, close_connection_pool=True)
            if redis is not queue:
                stack.push_async_callback(redis.aclose)
            dynamodb = await stack.enter_async_context(create_dynamodb_client(settings))
            http = await stack.enter_async_context(httpx.AsyncClient(timeout=10))
            store = UsageStore(dynamodb, settings.table("usage"))
            outbox = Outbox(dynamodb, settings, create_mailer(settings))
            tokens = TokenDirectory(redis, dynamodb, settings)
            # One reader per process relays every open SSE stream; a cluster reads each stream alone. Its idle
            # round is what a heartbeat waits for, so it is no longer than HEARTBEAT_S.
            idle_s = min(READ_BLOCK_MS / 1000, settings.heartbeat_s)
            relay = None if settings.redis_cluster else StreamRelay(redis, idle_s=idle_s)
            services = Services(
                settings=settings,
                redis=redis,
                arq=queue,
                dynamodb=dynamodb,
                quota=QuotaEngine(redis, store, timezone=settings.quota_timezone),
                http=http,
                tokens=tokens,
                token_service=TokenService(dynamodb, settings, tokens),
                users=UserStore(dynamodb, redis, settings),
                sessions=SessionStore(dynamodb, redis, settings),
                entitlements=EntitlementStore(dynamodb, settings),
                searches=SearchSessions(
                    redis, ttl_s=settings.stream_ttl_s, maxlen=settings.stream_maxlen, queue=queue, relay=relay
                ),
                ip_hasher=IpHasher(redis),
                cognito=CognitoVerifier(settings, http),
                payments=Reconciler(settings, dynamodb, redis, create_phonepe(settings, http), outbox),
                outbox=outbox,
            )
            app.state.services = services
            # Start-up leaves a large, long-lived heap (botocore's service models above all). Freezing it
            # keeps the collector from walking it again and again, which showed as 30-60 ms p99 stalls.
            gc.collect()
            gc.freeze()
            writer = asyncio.create_task(_write_last_used(services))
            stack.callback(writer.cancel)
            sweeper = asyncio.create_task(_sweep_searches(services))
            stack.callback(sweeper.cancel)
            if relay is not None:
                stack.push_async_callback(_stop, asyncio.create_task(relay.run()))
            yield

    def provide_services(state: State) -> Services:
        services: Services = state.services
        return services

    routes = [
        *health.ROUTES,
        *search.ROUTES,
        *accounts.ROUTES,
        *marketplace.ROUTES,
        *payments.ROUTES,
        *pages.ROUTES,
    ]
    document_errors(routes)
    app = Litestar(
        route_handlers=[
            *routes,
            metrics,
            validate.validate_token,
            create_static_files_router(path="/static", directories=[FRONTEND], include_in_schema=False),
        ],
        lifespan=[lifespan],
        dependencies={"services": Provide(provide_services, sync_to_thread=False)},
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=[observability_middleware, cors_middleware_factory(settings)],
        openapi_config=OpenAPIConfig(title="Solution Finder", version="0.1.0", path="/schema"),
        # Litestar would otherwise replace the root logger's JSON handler with its own text format.
        logging_config=LoggingConfig(
            configure_root_logger=False, loggers={"litestar": {"level": "INFO", "handlers": [], "propagate": True}}
        ),
        response_cache_config=ResponseCacheConfig(),
        request_max_body_size=64 * 1024,
        signature_namespace={"Services": Services, "State": State},
        debug=False,
    )
    validate.document_validator(app)
    return app


def app_factory() -> Litestar:
    """Entry point for uvicorn: `uvicorn api.app:app_factory --factory`."""
    settings = load_settings()
    configure(settings.log_level)
    return create_app(settings)
