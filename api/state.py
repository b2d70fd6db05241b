"""The clients and domain services the gateway builds once at start-up and hands to handlers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from arq.connections import ArqRedis
from redis.asyncio import Redis

from core.search_sessions import SearchSessions
from core.settings import Settings
from marketplace.cognito import CognitoVerifier
from marketplace.entitlements import EntitlementStore
from marketplace.mail import Outbox
from marketplace.sessions import IpHasher, SessionStore
from marketplace.tokens import TokenDirectory, TokenService
from marketplace.users import UserStore
from payments.reconcile import Reconciler
from quota.engine import QuotaEngine


@dataclass
class Services:
    settings: Settings
    redis: Redis
    arq: ArqRedis
    dynamodb: Any
    quota: QuotaEngine
    http: httpx.AsyncClient
    tokens: TokenDirectory
    token_service: TokenService
    users: UserStore
    sessions: SessionStore
    entitlements: EntitlementStore
    searches: SearchSessions
    ip_hasher: IpHasher
    cognito: CognitoVerifier
    payments: Reconciler
    outbox: Outbox
