"""`python -m dev.local MODULE [ARGS]`: runs MODULE with the environment `make up` gives its processes, so a
command from a second terminal (`make admin`, `make migrate`, `make index`) reaches the running servers."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

from core.settings import load_settings

LOCAL_CREDENTIALS = "local"


def local_env(base: Mapping[str, str]) -> dict[str, str]:
    """`base` with the local defaults filled in; anything already set wins."""
    env = dict(base)
    settings = load_settings(env)
    env.setdefault("REDIS_URL", f"redis://127.0.0.1:{settings.redis_port}/0")
    env.setdefault("DYNAMODB_ENDPOINT_URL", f"http://127.0.0.1:{settings.dynamodb_port}")
    env.setdefault("AWS_ACCESS_KEY_ID", LOCAL_CREDENTIALS)
    env.setdefault("AWS_SECRET_ACCESS_KEY", LOCAL_CREDENTIALS)
    env.setdefault("AWS_DEFAULT_REGION", settings.aws_region)
    env.setdefault("PHONEPE_BASE_URL", f"http://127.0.0.1:{settings.simulator_port}")
    env.setdefault("SIMULATOR_WEBHOOK_URL", f"http://127.0.0.1:{settings.api_port}/api/payments/phonepe/webhook")
    env.setdefault("DEV_MAILBOX", "true")  # only here: the dev mailbox shows everyone's codes
    env["PYTHONUNBUFFERED"] = "1"
    return env


def main(argv: list[str]) -> None:
    if not argv:
        raise SystemExit("usage: python -m dev.local MODULE [ARGS...]")
    os.execve(sys.executable, [sys.executable, "-m", *argv], local_env(os.environ))  # noqa: S606


if __name__ == "__main__":
    main(sys.argv[1:])
