"""The clients the gateway opens at start-up and hands to handlers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from arq.connections import ArqRedis
from redis.asyncio import Redis

from core.settings import Settings
from marketplace.cognito import CognitoVerifier
from marketplace.mail import Outbox
from marketplace.sessions import IpHasher
from marketplace.tokens import TokenDirectory
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
    ip_hasher: IpHasher
    cognito: CognitoVerifier
    payments: Reconciler
    outbox: Outbox
