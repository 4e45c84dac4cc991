"""The control API's asyncio client: what the `execd` CLI uses to talk to the daemon.

A thin shell over `execd.control.protocol`: it writes request lines and reads
answer lines. The daemon's refusals arrive as `ControlError` (with the daemon's
code and message); failing to reach the daemon at all is a
`ControlConnectionError`, and a daemon that is simply not running is its
subclass `DaemonNotRunning`, whose message says how to start it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncGenerator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from execd.control.protocol import (
    ControlError,
    ErrorCode,
    Event,
    HaltState,
    Health,
    PlanStatus,
    Result,
    WatchEvent,
    as_type,
    decode_response,
    encode_request,
)

START_HINT = "start it with `execd run` (or `systemctl start execd` under systemd)"

STARTING_RETRY_SECONDS = 0.5
"""How often `submit` asks again while the daemon answers ``starting``."""
DEFAULT_TIMEOUT = 30.0
"""Seconds to wait for an answer (not for `watch`, which lasts as long as the plan)."""

_READ_LIMIT = 64 * 1024 * 1024  # `status` of every plan can be large; requests are capped at 1 MiB


class ControlConnectionError(Exception):
    """The daemon could not be reached, or the connection broke before the answer."""


class DaemonNotRunning(ControlConnectionError):
    """Nothing listens on the socket: no file, or a stale file from a dead daemon."""


class ControlClient:
    """One connection to the daemon; requests are answered in order.

    Use as ``async with ControlClient(path) as client: await client.health()``. One request
    at a time (a lock serialises concurrent callers); a `watch` that is left early closes
    the connection, since the rest of its stream would still be on the wire.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, timeout: float | None = DEFAULT_TIMEOUT
    ) -> None:
        self._path = Path(path)
        self._timeout = timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._lock = asyncio.Lock()

    @property
    def path(self) -> Path:
        """The socket this client talks to."""
        return self._path

    async def connect(self) -> None:
        """Open the connection; raise `DaemonNotRunning` with how to start the daemon."""
        try:
            self._reader, self._writer = await asyncio.open_unix_connection(
                str(self._path), limit=_READ_LIMIT
            )
        except FileNotFoundError as exc:
            raise DaemonNotRunning(
                f"execd is not running (no socket at {self._path}); {START_HINT}"
            ) from exc
        except ConnectionRefusedError as exc:
            raise DaemonNotRunning(
                f"execd is not running (nothing listens on {self._path}); {START_HINT}"
            ) from exc
        except PermissionError as exc:
            raise ControlConnectionError(
                f"permission denied on {self._path}: run as the daemon's user, or as a member "
                "of its api.socket_group"
            ) from exc
        except OSError as exc:
            raise ControlConnectionError(f"cannot connect to {self._path}: {exc}") from exc

    async def close(self) -> None:
        """Close the connection (idempotent)."""
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # --- raw protocol -------------------------------------------------------------------------

    async def _send(self, op: str, fields: Mapping[str, Any]) -> None:
        if self._writer is None:
            await self.connect()
        assert self._writer is not None
        try:
            self._writer.write(encode_request(op, fields))
            await self._writer.drain()
        except ConnectionError as exc:
            await self.close()
            raise ControlConnectionError(f"lost the connection to execd: {exc}") from exc

    async def _read(self) -> Result | Event:
        assert self._reader is not None
        try:
            line = await self._reader.readuntil(b"\n")
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            # EOF or a reset (the daemon closed with our request unread): same story.
            await self.close()
            raise ControlConnectionError(
                "execd closed the connection before answering (is it shutting down?)"
            ) from exc
        except asyncio.LimitOverrunError as exc:
            await self.close()
            raise ControlError(ErrorCode.INVALID_RESPONSE, "answer line too long") from exc
        return decode_response(line)

    async def request(self, op: str, **fields: Any) -> Any:
        """Send one request and return its ``result`` as plain JSON data.

        Raises `ControlError` with the daemon's code when it refuses, and
        `ControlConnectionError` when the daemon cannot be reached or does not answer
        within the timeout.
        """
        async with self._lock:
            try:
                async with asyncio.timeout(self._timeout):
                    await self._send(op, fields)
                    answer = await self._read()
            except TimeoutError as exc:
                await self.close()
                raise ControlConnectionError(
                    f"execd did not answer {op!r} within {self._timeout:g} s"
                ) from exc
        if isinstance(answer, Event):
            await self.close()
            raise ControlError(ErrorCode.INVALID_RESPONSE, f"unexpected event line for {op!r}")
        return answer.value

    async def watch(self, plan_id: str) -> AsyncGenerator[WatchEvent | PlanStatus, None]:
        """Yield the plan's progress events, then its final `PlanStatus` (the last item)."""
        async with self._lock:
            finished = False
            try:
                await self._send("watch", {"plan_id": plan_id})
                while True:
                    answer = await self._read()
                    if isinstance(answer, Result):
                        finished = True
                        yield as_type(answer.value, PlanStatus)
                        return
                    yield answer.event
            finally:
                if not finished:
                    await self.close()

    # --- typed operations ---------------------------------------------------------------------

    async def submit(self, plan: Mapping[str, Any], *, dry_run: bool = False) -> PlanStatus:
        """Submit a plan (a parsed PLAN.json); an existing `plan_id` with the same document
        returns that plan (``already_submitted``); `dry_run` sends and keeps nothing.

        A daemon still reconciling at start answers ``starting`` having done nothing: the
        submission is sent again, every `STARTING_RETRY_SECONDS`, within the timeout.
        """
        fields: dict[str, Any] = {"plan": plan}
        if dry_run:
            fields["dry_run"] = True
        loop = asyncio.get_running_loop()
        end = None if self._timeout is None else loop.time() + self._timeout
        while True:
            try:
                return as_type(await self.request("submit", **fields), PlanStatus)
            except ControlError as exc:
                if exc.code != ErrorCode.STARTING:
                    raise
                left = None if end is None else end - loop.time()
                if left is not None and left <= STARTING_RETRY_SECONDS:
                    raise
            # The daemon says nothing when it becomes ready: asking again is the only way.
            await asyncio.sleep(STARTING_RETRY_SECONDS)

    async def status(self, plan_id: str) -> PlanStatus:
        """One plan's status."""
        return as_type(await self.request("status", plan_id=plan_id), PlanStatus)

    async def plans(self) -> list[PlanStatus]:
        """Every plan the daemon knows."""
        return as_type(await self.request("status"), list[PlanStatus])

    async def cancel(self, plan_id: str) -> PlanStatus:
        """Cancel a plan's working legs."""
        return as_type(await self.request("cancel", plan_id=plan_id), PlanStatus)

    async def halt(self) -> HaltState:
        """Cancel every working execd order; refuse new plans until `resume`."""
        return as_type(await self.request("halt"), HaltState)

    async def resume(self) -> HaltState:
        """Accept plans again."""
        return as_type(await self.request("resume"), HaltState)

    async def health(self) -> Health:
        """Streams, quote ages, request budget, halted."""
        return as_type(await self.request("health"), Health)


async def request(path: str | os.PathLike[str], op: str, **fields: Any) -> Any:
    """One request on a fresh connection: `ControlClient.request` for one-shot callers."""
    async with ControlClient(path) as client:
        return await client.request(op, **fields)


__all__ = [
    "START_HINT",
    "ControlClient",
    "ControlConnectionError",
    "ControlError",
    "DaemonNotRunning",
    "request",
]
