"""`python -m api.serve`: runs the gateway on uvicorn with the settings' host, port, workers and proxies.

Every launcher (make up, compose, the tests, the benchmarks) starts the gateway through here, so that
forwarded headers are trusted only from TRUSTED_PROXIES: uvicorn's own default trusts X-Forwarded-For
from loopback, which let a local caller pick any client address it liked.
"""

from __future__ import annotations

import argparse

import uvicorn

from core.logs import log_config
from core.settings import load_settings


def main(argv: list[str] | None = None) -> None:
    settings = load_settings()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default=settings.api_host)
    parser.add_argument("--port", type=int, default=settings.api_port)
    parser.add_argument("--workers", type=int, default=settings.gateway_workers)
    args = parser.parse_args(argv)
    trusted = settings.trusted_proxy_list
    uvicorn.run(
        "api.app:app_factory",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        access_log=False,
        proxy_headers=bool(trusted),
        forwarded_allow_ips=trusted or None,
        log_config=log_config(settings.log_level),  # uvicorn's own lines as JSON too
        timeout_graceful_shutdown=5,  # open SSE streams would otherwise hold a stop for ever
    )


if __name__ == "__main__":
    main()
