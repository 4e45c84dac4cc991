"""sd_notify lines reach a datagram socket exactly as systemd expects them."""

from __future__ import annotations

import os
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from execd.engine.systemd import Notifier


@pytest.fixture
def notify_socket() -> Iterator[tuple[socket.socket, str]]:
    """A datagram socket standing in for systemd's notify socket."""
    directory = tempfile.mkdtemp(dir="/tmp")
    path = str(Path(directory) / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(5)
    yield sock, path
    sock.close()
    os.unlink(path)
    os.rmdir(directory)


def test_messages(notify_socket: tuple[socket.socket, str]) -> None:
    """READY, STATUS, WATCHDOG and STOPPING arrive as newline-separated assignments."""
    sock, path = notify_socket
    notifier = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "30000000"})
    assert notifier.enabled
    assert notifier.watchdog_interval == 15.0
    notifier.ready("1 plan working")
    assert sock.recv(4096) == b"READY=1\nSTATUS=1 plan working"
    notifier.watchdog()
    assert sock.recv(4096) == b"WATCHDOG=1"
    notifier.stopping("cancelling orders")
    assert sock.recv(4096) == b"STOPPING=1\nSTATUS=cancelling orders"


def test_abstract_socket() -> None:
    """An '@' address is systemd's abstract namespace."""
    name = f"execd-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        Notifier({"NOTIFY_SOCKET": "@" + name}).status("hello")
        assert sock.recv(4096) == b"STATUS=hello"


def test_disabled_outside_systemd() -> None:
    """Without NOTIFY_SOCKET nothing is sent and no watchdog is due."""
    notifier = Notifier({})
    assert not notifier.enabled
    assert notifier.watchdog_interval is None
    notifier.ready("x")  # no error, nowhere to send


def test_watchdog_for_another_pid() -> None:
    """WATCHDOG_PID naming another process means the watchdog is not ours."""
    notifier = Notifier({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "1000", "WATCHDOG_PID": "1"})
    assert notifier.watchdog_interval is None or os.getpid() == 1
