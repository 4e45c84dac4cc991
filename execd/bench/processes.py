"""Real processes for item 3: `execd sim` alone, `execd run` against it, fresh interpreters.

Readiness is systemd's: the daemon is started with a ``NOTIFY_SOCKET`` this module binds, and
"plans accepted" is the moment its ``READY=1`` arrives (the daemon sends it only once the
streams are up, orders are reconciled and the control socket is bound). Memory is ``VmRSS``
from ``/proc``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# Variables that would override the bench's configuration of the child daemon.
_SCRUB = ("APCA_", "VENUE__", "API__", "JOURNAL__", "EXECD_CONFIG", "NOTIFY_SOCKET", "WATCHDOG_")


def rss_mb(pid: int) -> float:
    """Resident set size of process `pid`, in MB (1e6 bytes)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024 / 1e6
    raise RuntimeError(f"no VmRSS for pid {pid}")


def clean_env() -> dict[str, str]:
    """This environment without anything that configures execd."""
    return {k: v for k, v in os.environ.items() if not k.startswith(_SCRUB)}


@contextmanager
def sim_process(*args: str) -> Iterator[dict[str, str]]:
    """`execd sim` as its own process; yields its URLs (its first stdout line)."""
    cmd = [sys.executable, "-m", "execd", "sim", "--port", "0", *args]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=clean_env(), text=True
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"execd sim did not start: {cmd}")
        yield json.loads(line)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def daemon_env(urls: dict[str, str], workdir: Path, notify: str) -> dict[str, str]:
    """Environment for `execd run` against a separate simulated venue."""
    empty = workdir / "execd.toml"
    empty.write_text("", encoding="utf-8")
    return {
        **clean_env(),
        "EXECD_CONFIG": str(empty),
        "VENUE__KIND": "sim",
        "VENUE__TRADING_URL": urls["trading_url"],
        "VENUE__TRADING_STREAM_URL": urls["trading_stream_url"],
        "VENUE__DATA_URL": urls["data_url"],
        "VENUE__DATA_STREAM_URL": urls["data_stream_url"],
        "API__SOCKET_PATH": str(workdir / "s"),
        "JOURNAL__PATH": str(workdir / "journal.db"),
        "LOG__LEVEL": "warning",
        "LOG__FORMAT": "json",
        "NOTIFY_SOCKET": notify,
    }


def daemon_start(urls: dict[str, str], idle_s: float = 2.0) -> tuple[float, float]:
    """Start `execd run` against `urls`: (ms from spawn to READY=1, RSS MB after `idle_s`)."""
    with tempfile.TemporaryDirectory(prefix="xb", dir="/tmp") as tmp:
        workdir = Path(tmp)
        address = str(workdir / "notify")
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
            notify.bind(address)
            notify.settimeout(60)
            env = daemon_env(urls, workdir, address)
            began = time.monotonic()
            proc = subprocess.Popen(
                [sys.executable, "-m", "execd", "run"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                while True:
                    try:
                        message = notify.recv(4096).decode()
                    except TimeoutError:
                        raise RuntimeError("the daemon never said READY=1") from None
                    if "READY=1" in message.splitlines():
                        ready_ms = (time.monotonic() - began) * 1000
                        break
                time.sleep(idle_s)  # a benchmark, not a test: let the idle daemon settle
                rss = rss_mb(proc.pid)
            finally:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
    return ready_ms, rss


_IMPORT_PROBE = """
import json, sys, time
pre = [m for m in sys.argv[2].split(",") if m]
for m in pre:
    __import__(m)
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024 / 1e6
r0 = rss()
t0 = time.perf_counter()
if sys.argv[1]:
    __import__(sys.argv[1])
print(json.dumps({"ms": (time.perf_counter() - t0) * 1000, "rss": rss(), "delta": rss() - r0}))
"""


def import_cost(module: str, preload: tuple[str, ...] = ()) -> dict[str, float]:
    """A fresh interpreter's cost of importing `module` after `preload`: ms, RSS, RSS delta."""
    out = subprocess.run(
        [sys.executable, "-c", _IMPORT_PROBE, module, ",".join(preload)],
        capture_output=True,
        text=True,
        check=True,
        env={**clean_env(), "PYTHONWARNINGS": "ignore"},
    )
    return {k: float(v) for k, v in json.loads(out.stdout.strip().splitlines()[-1]).items()}
