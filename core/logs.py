"""Structured JSON log lines carrying the request id from the gateway into the worker job and back.

`logging.json` beside this module is the one logging configuration: `configure()` applies it in our
processes, and uvicorn takes it with `--log-config core/logging.json`, so uvicorn's own lines (start-up,
shutdown, errors, in its parent process too) are JSON like ours. Its access log is discarded: each line
holds the client's address (requests are counted in the gateway's metrics instead).
"""

from __future__ import annotations

import contextvars
import json
import logging
import logging.config
import time
from pathlib import Path
from typing import Any

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
LOG_CONFIG_PATH = Path(__file__).with_name("logging.json")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        request_id = REQUEST_ID.get()
        if request_id:
            line["request_id"] = request_id
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line)


def log_config(level: str = "INFO") -> dict[str, Any]:
    """logging.json with every level set to `level`."""
    config: dict[str, Any] = json.loads(LOG_CONFIG_PATH.read_text())
    config["root"]["level"] = level
    for logger in config["loggers"].values():
        logger["level"] = level
    return config


def configure(level: str = "INFO") -> None:
    logging.config.dictConfig(log_config(level))
