"""The control API's Unix-socket server: a thin asyncio shell over `protocol`.

It owns the socket file (permissions, a stale file from a dead daemon, refusing
to start next to a live one), checks each peer's uid with SO_PEERCRED, frames
lines, and hands each request to a `ControlHandler` — the engine. Everything
about what a line means is in `execd.control.protocol`.

Use it inside the daemon's TaskGroup, with the readiness handshake::

    ready = asyncio.Event()
    tg.create_task(serve(engine, settings.api.socket_path, ready=ready), name="control")
    await ready.wait()          # the socket is bound and accepting

or as ``async with ControlServer(engine, path): ...``.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import logging
import os
import pwd
import socket
import stat
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self, assert_never

import structlog

from execd.control.protocol import (
    CancelRequest,
    ControlError,
    ErrorCode,
    HaltRequest,
    HaltState,
    Health,
    HealthRequest,
    LineFramer,
    LineTooLong,
    PlanStatus,
    Request,
    ResumeRequest,
    StatusRequest,
    SubmitRequest,
    WatchEvent,
    WatchRequest,
    decode_request,
    encode_error,
    encode_event,
    encode_result,
    error_line,
)

log = structlog.get_logger("execd.control")

_READ_CHUNK = 64 * 1024
_PEERCRED = struct.Struct("3i")  # struct ucred {pid_t pid; uid_t uid; gid_t gid;} (socket(7))
_QUIET_OPS = frozenset({"status", "health"})  # polled by monitoring: logged at debug

IDLE_TIMEOUT_SECONDS = 300.0
"""A connection with no request for this long (none in progress) is closed; a `watch`
streaming its events is not idle."""
MAX_CONNECTIONS_PER_PEER = 32
"""Open connections one uid may hold; more are answered ``too_many_connections`` and
closed (with `LimitNOFILE` in the unit, a flood cannot take every descriptor)."""


class ControlHandler(Protocol):
    """What the control API needs from the engine; the daemon's plan runner implements it.

    Refuse with `ControlError` (``invalid_plan``, ``not_found``, ``halted``): the client
    gets the code and message. Any other exception is a bug: the server logs it with
    its traceback and answers ``internal``; the daemon goes on.
    """

    async def submit(self, plan: Mapping[str, Any], *, dry_run: bool = False) -> PlanStatus:
        """Validate and start `plan`. A `plan_id` that exists with the same document returns
        that plan (``already_submitted``) and sends nothing; `dry_run` sends and keeps nothing."""
        ...

    async def status(self, plan_id: str) -> PlanStatus:
        """One plan's current status; ``not_found`` when unknown."""
        ...

    async def list_plans(self) -> list[PlanStatus]:
        """Every plan the daemon knows, oldest first."""
        ...

    async def cancel(self, plan_id: str) -> PlanStatus:
        """Cancel a plan's working legs; answer its status after the cancel requests."""
        ...

    async def halt(self) -> HaltState:
        """Cancel every working execd order and refuse new plans until `resume`."""
        ...

    async def resume(self) -> HaltState:
        """Accept plans again."""
        ...

    async def health(self) -> Health:
        """Streams, quote ages, request budget, halted."""
        ...

    def watch(self, plan_id: str) -> AsyncIterator[WatchEvent]:
        """Progress events of one plan, ending when the plan ends.

        Typically an async generator. Raise ``not_found`` (at the first ``__anext__`` is
        fine) for an unknown plan. Start with a ``snapshot`` event per leg. When it ends
        the server sends ``status(plan_id)`` as the final line.
        """
        ...


class ControlSocketError(RuntimeError):
    """The socket cannot be served: another daemon answers on it, or the path is unusable."""


@dataclass(frozen=True, slots=True)
class PeerCredentials:
    """Who is on the other end of a Unix socket, as the kernel says (SO_PEERCRED)."""

    pid: int
    uid: int
    gid: int


def peer_credentials(sock: socket.socket | Any) -> PeerCredentials:
    """Read the peer's pid, uid and gid; the kernel fills them, the peer cannot lie."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
    pid, uid, gid = _PEERCRED.unpack(raw)
    return PeerCredentials(pid, uid, gid)


def default_allowed_uids(extra: Collection[int] = ()) -> frozenset[int]:
    """The daemon's own uid, root, and `extra` (config ``api.allowed_uids``)."""
    return frozenset({os.geteuid(), 0, *extra})


def _resolve_gid(group: str | int) -> int:
    if isinstance(group, int):
        return group
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise ControlSocketError(f"socket group {group!r} does not exist") from None


def _in_group(uid: int, gid: int, group_gid: int) -> bool:
    """True when the peer's primary group or one of its supplementary groups is `group_gid`."""
    if gid == group_gid:
        return True
    try:
        name = pwd.getpwuid(uid).pw_name
        return name in grp.getgrgid(group_gid).gr_mem
    except KeyError:
        return False


async def _someone_answers(path: Path) -> bool:
    """Probe an existing socket file: does a live process accept on it?"""
    try:
        _, writer = await asyncio.open_unix_connection(str(path))
    except (ConnectionRefusedError, FileNotFoundError):
        return False
    except PermissionError as exc:
        # Owned by someone else and not ours to touch: certainly not stale for us to delete.
        raise ControlSocketError(
            f"{path} exists and belongs to another user; refusing to replace it"
        ) from exc
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


class ControlServer:
    """The control socket: bound by `start`, closed (and its file removed) by `close`.

    `mode` defaults to 0600, or 0660 when `group` is set (the socket file is then owned
    by that group, so its members can connect). `allowed_uids` is the exact set of peer
    uids served (default: `default_allowed_uids()`); with a `group`, its members are
    allowed too. Others get one ``forbidden`` line and are disconnected.
    """

    def __init__(
        self,
        handler: ControlHandler,
        path: str | os.PathLike[str],
        *,
        group: str | int | None = None,
        mode: int | None = None,
        allowed_uids: Collection[int] | None = None,
    ) -> None:
        self._handler = handler
        self._path = Path(path)
        self._group = group
        self._gid: int | None = None
        self._mode = mode if mode is not None else (0o660 if group is not None else 0o600)
        self._allowed_uids = (
            frozenset(allowed_uids) if allowed_uids is not None else default_allowed_uids()
        )
        self._server: asyncio.Server | None = None
        self._inode: tuple[int, int] | None = None
        self._connections: set[asyncio.Task[Any]] = set()
        self._per_peer: dict[int, int] = {}
        self._closed = asyncio.Event()

    @property
    def path(self) -> Path:
        """Where the socket file is."""
        return self._path

    async def start(self) -> None:
        """Bind and listen. Raises `ControlSocketError` if another daemon answers on the path."""
        if self._server is not None:
            raise RuntimeError("control server already started")
        self._gid = None if self._group is None else _resolve_gid(self._group)
        await self._clear_stale_socket()
        sock = self._bind()
        self._server = await asyncio.start_unix_server(self._on_connect, sock=sock)
        st = self._path.stat()
        self._inode = (st.st_dev, st.st_ino)
        log.info("control_listening", path=str(self._path), mode=f"{self._mode:04o}")

    async def _clear_stale_socket(self) -> None:
        """Prepare the path: make the directory, replace a dead daemon's socket file."""
        parent = self._path.parent
        if not parent.exists():
            # 0700: only the daemon's user may even look up the socket (systemd's
            # RuntimeDirectory= creates it for us, with its own mode, under the service).
            parent.mkdir(mode=0o700, parents=True)
        try:
            st = self._path.lstat()
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(st.st_mode):
            raise ControlSocketError(
                f"{self._path} exists and is not a socket; refusing to replace it"
            )
        if await _someone_answers(self._path):
            raise ControlSocketError(
                f"another execd is already serving {self._path}; stop it first "
                "(`execd status` talks to it)"
            )
        log.warning("control_stale_socket_removed", path=str(self._path))
        self._path.unlink(missing_ok=True)

    def _bind(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            # Linux creates the file with the socket inode's mode (minus umask): fchmod
            # before bind closes the window in which the file exists with a looser mode.
            os.fchmod(sock.fileno(), self._mode)
            sock.bind(str(self._path))
            if self._gid is not None:
                os.chown(self._path, -1, self._gid)
            os.chmod(self._path, self._mode)  # umask may have removed bits we asked for
            sock.setblocking(False)
        except OSError as exc:
            sock.close()
            raise ControlSocketError(
                f"cannot create the control socket {self._path}: {exc}"
            ) from exc
        return sock

    async def close(self) -> None:
        """Stop accepting, end open connections (watchers included), remove the socket file."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.gather(*self._connections, return_exceptions=True)
        await server.wait_closed()
        self._remove_socket_file()
        self._closed.set()
        log.info("control_closed", path=str(self._path))

    def _remove_socket_file(self) -> None:
        # Only our own file: a successor daemon may already have bound a new one there.
        with contextlib.suppress(FileNotFoundError):
            st = self._path.lstat()
            if (st.st_dev, st.st_ino) == self._inode:
                self._path.unlink()

    async def wait_closed(self) -> None:
        """Return once `close` has finished."""
        await self._closed.wait()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # --- connections ----------------------------------------------------------------------------

    def _allowed(self, peer: PeerCredentials) -> bool:
        if peer.uid in self._allowed_uids:
            return True
        return self._gid is not None and _in_group(peer.uid, peer.gid, self._gid)

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        counted: int | None = None
        try:
            peer = peer_credentials(writer.get_extra_info("socket"))
            if self._per_peer.get(peer.uid, 0) >= MAX_CONNECTIONS_PER_PEER:
                log.warning("control_peer_too_many_connections", peer_uid=peer.uid)
                writer.write(
                    encode_error(
                        ErrorCode.TOO_MANY_CONNECTIONS,
                        f"uid {peer.uid} already holds {MAX_CONNECTIONS_PER_PEER} connections",
                    )
                )
                await writer.drain()
                return
            counted = peer.uid
            self._per_peer[counted] = self._per_peer.get(counted, 0) + 1
            if not self._allowed(peer):
                log.warning("control_peer_refused", peer_uid=peer.uid, peer_pid=peer.pid)
                writer.write(
                    encode_error(
                        ErrorCode.FORBIDDEN,
                        f"uid {peer.uid} is not allowed on this socket "
                        "(see api.allowed_uids and api.socket_group)",
                    )
                )
                await writer.drain()
                return
            await self._serve_connection(reader, writer, peer)
        except OSError:
            pass  # the client went away mid-answer (EPIPE, ECONNRESET): nothing to tell anyone
        finally:
            if counted is not None:
                left = self._per_peer.pop(counted) - 1
                if left:
                    self._per_peer[counted] = left
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: PeerCredentials
    ) -> None:
        framer = LineFramer()
        while True:
            try:
                async with asyncio.timeout(IDLE_TIMEOUT_SECONDS):
                    data = await reader.read(_READ_CHUNK)
            except TimeoutError:
                log.info("control_idle_closed", peer_uid=peer.uid)
                await _send(
                    writer,
                    encode_error(
                        ErrorCode.IDLE_TIMEOUT,
                        f"no request for {IDLE_TIMEOUT_SECONDS:g} s; connection closed",
                    ),
                )
                return
            frames = framer.feed(data) if data else framer.feed_eof()
            for frame in frames:
                if isinstance(frame, LineTooLong):
                    await _send(
                        writer,
                        encode_error(
                            ErrorCode.LINE_TOO_LONG,
                            f"request line longer than {frame.limit} bytes; skipped",
                        ),
                    )
                elif frame.strip():
                    await self._answer(frame, writer, peer)
            if not data:
                return

    async def _answer(
        self, line: bytes, writer: asyncio.StreamWriter, peer: PeerCredentials
    ) -> None:
        """Answer one request line with its final line (and, for watch, the events before)."""
        try:
            request = decode_request(line)
        except ControlError as exc:
            log.info(
                "control_request_refused", code=exc.code, message=exc.message, peer_uid=peer.uid
            )
            await _send(writer, error_line(exc))
            return
        op = _op(request)
        started = time.monotonic()
        answer = await self._dispatch(request, writer)
        ok = answer.startswith(b'{"ok":true')
        log.log(
            logging.DEBUG if op in _QUIET_OPS and ok else logging.INFO,
            "control_request",
            op=op,
            ok=ok,
            peer_uid=peer.uid,
            duration_ms=round((time.monotonic() - started) * 1000, 3),
        )
        await _send(writer, answer)

    async def _dispatch(self, request: Request, writer: asyncio.StreamWriter) -> bytes:
        """Run the handler for `request`; return the final line to send."""
        handler = self._handler
        match request:
            case SubmitRequest(plan=plan, dry_run=dry_run):
                return await _call(request, lambda: handler.submit(plan, dry_run=dry_run))
            case StatusRequest(plan_id=None):
                return await _call(request, handler.list_plans)
            case StatusRequest(plan_id=wanted):
                assert wanted is not None  # the case above took None
                return await _call(request, lambda: handler.status(wanted))
            case CancelRequest(plan_id=to_cancel):
                return await _call(request, lambda: handler.cancel(to_cancel))
            case HaltRequest():
                return await _call(request, handler.halt)
            case ResumeRequest():
                return await _call(request, handler.resume)
            case HealthRequest():
                return await _call(request, handler.health)
            case WatchRequest(plan_id=watched):
                return await self._watch(request, watched, writer)
            case _:
                assert_never(request)

    async def _watch(
        self, request: WatchRequest, plan_id: str, writer: asyncio.StreamWriter
    ) -> bytes:
        """Relay the handler's events as they come; the final line is the plan's status."""
        try:
            events = self._handler.watch(plan_id)
        except ControlError as exc:
            return error_line(exc)
        except Exception:
            return _internal(request)
        try:
            while True:
                try:
                    event = await anext(events)
                except StopAsyncIteration:
                    break
                except ControlError as exc:
                    return error_line(exc)
                except Exception:
                    return _internal(request)
                # Outside the handler's try: a client that left raises ConnectionError here,
                # which ends this connection, not the daemon.
                await _send(writer, encode_event(event))
        finally:
            aclose = getattr(events, "aclose", None)
            if aclose is not None:
                try:
                    await aclose()
                except Exception:
                    log.exception("control_watch_close_failed", plan_id=plan_id)
        return await _call(request, lambda: self._handler.status(plan_id))


def _op(request: Request) -> str:
    return type(request).__struct_config__.tag  # type: ignore[return-value]


def _internal(request: Request) -> bytes:
    """Log the handler's crash (we are inside ``except``) and answer ``internal``."""
    op = _op(request)
    log.exception("control_handler_failed", op=op, request=repr(request)[:500])
    return encode_error(ErrorCode.INTERNAL, f"the daemon failed while handling {op!r}; see its log")


async def _call(request: Request, call: Callable[[], Awaitable[Any]]) -> bytes:
    """Await one handler call; turn its result, refusal or crash into the final line.

    The boundary that keeps the daemon alive: a bug in one request's handling becomes an
    ``internal`` answer and a logged traceback, never a dead control socket.
    """
    try:
        result = await call()
    except ControlError as exc:
        return error_line(exc)
    except Exception:
        return _internal(request)
    return encode_result(result)


async def _send(writer: asyncio.StreamWriter, line: bytes) -> None:
    writer.write(line)
    await writer.drain()


async def serve(
    handler: ControlHandler,
    path: str | os.PathLike[str],
    *,
    ready: asyncio.Event | None = None,
    group: str | int | None = None,
    mode: int | None = None,
    allowed_uids: Collection[int] | None = None,
) -> None:
    """Serve the control socket until cancelled (or `ControlServer.close`), then clean up.

    `ready` is set once the socket is bound and accepting: the daemon awaits it before
    telling systemd READY=1. A startup failure (`ControlSocketError`) is raised, so in a
    TaskGroup it cancels the waiter instead of leaving it hanging.
    """
    server = ControlServer(handler, path, group=group, mode=mode, allowed_uids=allowed_uids)
    await server.start()
    try:
        if ready is not None:
            ready.set()
        await server.wait_closed()
    finally:
        await server.close()
