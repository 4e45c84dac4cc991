"""What the log-pipeline tests share: logging put back after each test, and filling and
draining a non-blocking pipe (a stdout whose reader falls behind)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import pytest
import structlog


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Put structlog, stdlib logging and contextvars back as they were for other tests.

    Autouse in every module that imports it."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()
    root.handlers[:] = handlers
    root.setLevel(level)


def fill(fd: int) -> int:
    """Write filler bytes into a non-blocking pipe until it is full; the count written."""
    total = 0
    chunk = b"x" * 4096
    while True:
        try:
            total += os.write(fd, chunk)
        except BlockingIOError:
            return total


def drain(fd: int) -> bytes:
    """Everything a non-blocking pipe holds now (up to its end, if the writer closed it)."""
    data = bytearray()
    while True:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            return bytes(data)
        if not chunk:
            return bytes(data)
        data += chunk
