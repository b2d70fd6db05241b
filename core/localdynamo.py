"""`python -m core.localdynamo -p PORT`: moto's DynamoDB server for local runs and tests, with requests
applied one at a time. moto's backends are not thread-safe, so under its threaded server two conditional
writes or transactions can interleave; real DynamoDB never lets them. A lock around the app restores that."""

from __future__ import annotations

import argparse
import threading
from collections.abc import Callable, Iterable
from typing import Any

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import run_simple


def serialised(app: Callable[..., Iterable[bytes]]) -> Callable[..., list[bytes]]:
    lock = threading.Lock()

    def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        with lock:
            return list(app(environ, start_response))  # the whole body is produced inside the lock

    return wrapped


def main() -> None:
    parser = argparse.ArgumentParser(prog="core.localdynamo")
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=8001)
    args = parser.parse_args()
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(args.host, args.port, serialised(app), threaded=True, use_reloader=False)


if __name__ == "__main__":
    main()
