"""The real daemon as a subprocess, against a `SimVenue` that lives in the test process.

The venue outlives the daemon, so a test can kill the daemon (``kill9``), restart it on the
same configuration (same socket, same journal) and ask the venue what really happened::

    async with SimVenue(config) as venue, DaemonProcess.for_venue(venue) as daemon:
        await daemon.start()                      # returns once READY=1 arrived
        async with daemon.client() as client:
            await client.submit(plan)
        await daemon.wait_log("order_submitted")  # hypothetical event name
        daemon.kill9()
        assert await daemon.wait_exit() == -signal.SIGKILL
        await daemon.start()                      # run 2: same socket and journal
        ...
        assert await daemon.sigterm() == 0

What the harness gives the child, as systemd would:

- ``NOTIFY_SOCKET``: a datagram socket the harness binds with ``SO_PASSCRED``, so every
  notification carries the sender's pid (systemd's ``NotifyAccess=main`` check).
  ``start()`` waits for ``READY=1`` from the daemon's own pid. With ``notify=False`` there is
  no socket and readiness is the control socket answering ``health``.
- ``WATCHDOG_USEC`` when asked, and ``WATCHDOG_PID`` equal to the daemon's pid: the child is
  started through a tiny wrapper that sets it, then ``execv``\\s the daemon (same pid).
- The wrapper also sets ``PR_SET_PDEATHSIG``: a daemon dies with the test process even when
  pytest itself is killed, and ``close()`` (the context exit) SIGKILLs whatever still runs.
  No daemon outlives its test.

The environment is scrubbed of everything that would override the written TOML (``SECTION__KEY``
variables, ``APCA_API_*``, ``EXECD_CONFIG``, systemd's own variables), and the child imports
execd from the same checkout as the test process.

The daemon's stdout (JSON log lines) is read through a pipe: each line is appended to
``log_path`` (every run, for post-mortems) and parsed for `log_events` / `wait_log`; stderr goes
to ``stderr_path``. Nothing here sleeps to synchronise: log lines, notifications and the exit
wake the waiters; only `notify=False` readiness polls ``health``, under a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import struct
import sys
import tempfile
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

import tomli_w

import execd
from execd.config import Settings
from execd.control.client import ControlClient, ControlConnectionError
from execd.sim.venue import SimVenue

DEADLINE = 20.0
"""Default bound of every wait here, in seconds (scale it; never add sleeps)."""

REPO = Path(execd.__file__).resolve().parents[1]
"""The checkout the test process imports execd from; the child imports the same one."""

UNIX_PATH_MAX = 107
"""sun_path holds 108 bytes including the terminating NUL."""

# Ladder settings for subprocess tests: seconds, not the seeds' production values (the same
# values as tests/engine/conftest.py FAST, which the in-process daemon tests use).
FAST: dict[str, dict[str, Any]] = {
    "better_orders": {
        "normal_timeout_seconds": 0.5,
        "open_timeout_seconds": 0.5,
        "wide_spread_wait_seconds": 1.0,
    },
    "ladder": {
        "quote_wait_seconds": 2.0,
        "confirm_timeout_seconds": 3.0,
        "fallback_timeout_seconds": 5.0,
        "passive_timeout_seconds": 2.0,
        "passive_patience_high_seconds": 2.0,
    },
    "shutdown": {"grace_seconds": 10.0},
}

# Runs in the child before the daemon: ties its life to the test process, names its own pid
# as the watchdog's (what systemd does), then becomes the daemon (execv keeps the pid, the
# environment and the death signal). argv: parent pid, then `execd` arguments.
_WRAPPER = """\
import os, signal, sys
if sys.platform == "linux":
    import ctypes
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
if os.getppid() != int(sys.argv[1]):
    os._exit(70)  # the test process died before the death signal was armed
if "WATCHDOG_USEC" in os.environ:
    os.environ["WATCHDOG_PID"] = str(os.getpid())
os.execv(sys.executable, [sys.executable, "-m", "execd", *sys.argv[2:]])
"""

_SYSTEMD_VARIABLES = (
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
    "RUNTIME_DIRECTORY",
    "STATE_DIRECTORY",
    "INVOCATION_ID",
)
_UCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid
_T = TypeVar("_T")


def short_tempdir() -> Path:
    """A fresh directory under /tmp with a short name: Unix socket paths must stay short."""
    return Path(tempfile.mkdtemp(prefix="xd", dir="/tmp"))


def child_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without anything that would override the daemon's TOML."""
    prefixes = tuple(f"{name.upper()}__" for name in Settings.model_fields)
    dropped = {"EXECD_CONFIG", "APCA_API_KEY_ID", "APCA_API_SECRET_KEY", *_SYSTEMD_VARIABLES}
    env = {
        key: value
        for key, value in os.environ.items()
        if key.upper() not in dropped and not key.upper().startswith(prefixes)
    }
    python_path = [str(REPO), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env["PYTHONPATH"] = os.pathsep.join(python_path)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def _toml_value(value: Any) -> Any:
    if isinstance(value, Path | Decimal):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _toml_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_toml_value(v) for v in value]
    return value


def venue_section(venue: SimVenue) -> dict[str, Any]:
    """The `[venue]` section that points a daemon at a running `SimVenue` (a separate venue)."""
    return {
        "kind": "sim",
        "feed": "iex",
        "trading_url": venue.trading_url,
        "trading_stream_url": venue.trading_stream_url,
        "data_url": venue.data_url,
        "data_stream_url": venue.data_stream_url,
        "key_id": venue.key_id,
        "secret_key": venue.secret_key,
    }


def write_config(directory: Path, venue: SimVenue, **sections: Mapping[str, Any]) -> Path:
    """Write ``directory/execd.toml`` for a daemon subprocess talking to ``venue``.

    The control socket is ``directory/s``, the journal ``directory/journal.db``, logs are
    JSON, ladder timeouts are `FAST`. ``sections`` are merged over that, key by key (e.g.
    ``shutdown={"working_orders": "leave"}``). Writing the same directory twice gives the
    same paths, so a restarted daemon finds its socket and journal again.
    """
    config: dict[str, dict[str, Any]] = {
        "venue": venue_section(venue),
        "api": {"socket_path": str(directory / "s")},
        "journal": {"path": str(directory / "journal.db")},
        "log": {"format": "json", "level": "info"},
    }
    for name, values in (*FAST.items(), *sections.items()):
        config[name] = {**config.get(name, {}), **values}
    socket_path = str(config["api"]["socket_path"])
    if len(os.fsencode(socket_path)) > UNIX_PATH_MAX:
        raise ValueError(f"socket path longer than {UNIX_PATH_MAX} bytes: {socket_path}")
    path = directory / "execd.toml"
    path.write_text(tomli_w.dumps(_toml_value(config)), encoding="utf-8")
    return path


@dataclass(frozen=True, slots=True)
class Notification:
    """One sd_notify datagram as the harness received it."""

    fields: dict[str, str]
    """``{"READY": "1", "STATUS": "..."}`` for ``READY=1\\nSTATUS=...``."""
    pid: int | None
    """The sender (``SCM_CREDENTIALS``); None if the kernel did not say."""
    at: float
    """Event-loop time of arrival."""
    control_socket_listening: bool | None = None
    """For ``READY=1`` only: whether the control socket accepted a connection at the moment
    the datagram was read (READY must come after the socket is bound)."""


class _Changes:
    """Wakes every waiter when anything happens (a log line, a datagram, the exit)."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def pulse(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self) -> None:
        await self._event.wait()


@dataclass
class _Run:
    """One start of the daemon: its process and what it said."""

    number: int
    process: asyncio.subprocess.Process
    lines: list[str] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    notifications: list[Notification] = field(default_factory=list)
    returncode: int | None = None


class DaemonProcess:
    """`execd run --config FILE` as a child process; see the module docstring.

    Use as an async context manager (leaving it kills a daemon still running). Every start
    of the same object reuses the config, so the socket and journal paths survive a restart.
    `log_events`, `notifications` and `wait_log` look at the current run unless asked for
    every run.
    """

    def __init__(
        self,
        config_path: Path,
        *,
        notify: bool = True,
        watchdog_usec: int | None = None,
        directory: Path | None = None,
        owns_directory: bool = False,
    ) -> None:
        self.config_path = config_path
        self.directory = directory or config_path.parent
        self._owns_directory = owns_directory
        settings = _read_toml(config_path)
        self.socket_path = Path(settings["api"]["socket_path"])
        self.journal_path = Path(settings["journal"]["path"])
        self.log_path = self.directory / "daemon.log"
        self.stderr_path = self.directory / "daemon.stderr"
        self.notify_path: Path | None = self.directory / "n" if notify else None
        self.watchdog_usec = watchdog_usec
        self.stray_notifications: list[Notification] = []
        """Datagrams from a pid that is not the current daemon (systemd would drop them)."""
        self._runs: list[_Run] = []
        self._supervisor: asyncio.Task[None] | None = None
        self._changes = _Changes()
        self._notify_socket: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def for_venue(
        cls,
        venue: SimVenue,
        *,
        notify: bool = True,
        watchdog_usec: int | None = None,
        **sections: Mapping[str, Any],
    ) -> DaemonProcess:
        """A daemon in a fresh short directory, configured by `write_config`; the directory
        is removed on a clean exit of the context (kept, and its path printed, on failure)."""
        directory = short_tempdir()
        config = write_config(directory, venue, **sections)
        return cls(
            config,
            notify=notify,
            watchdog_usec=watchdog_usec,
            directory=directory,
            owns_directory=True,
        )

    # ---------------------------------------------------------------------------- state

    @property
    def runs(self) -> int:
        """How many times the daemon was started."""
        return len(self._runs)

    @property
    def pid(self) -> int | None:
        """The current (or last) daemon's pid."""
        return self._runs[-1].process.pid if self._runs else None

    @property
    def returncode(self) -> int | None:
        """The last run's exit code (negative: killed by that signal); None while running."""
        return self._runs[-1].returncode if self._runs else None

    @property
    def running(self) -> bool:
        return bool(self._runs) and self._runs[-1].returncode is None

    def _current(self) -> _Run:
        if not self._runs:
            raise RuntimeError("the daemon was never started")
        return self._runs[-1]

    def log_events(self, *, all_runs: bool = False) -> list[dict[str, Any]]:
        """The JSON log lines of the current run (or of every run), parsed, in order."""
        runs = self._runs if all_runs else self._runs[-1:]
        return [event for run in runs for event in run.events]

    def notifications(self, *, all_runs: bool = False) -> list[Notification]:
        """The sd_notify datagrams of the current run (or of every run), in order."""
        runs = self._runs if all_runs else self._runs[-1:]
        return [note for run in runs for note in run.notifications]

    def output_tail(self, lines: int = 30) -> str:
        """The last stdout and stderr lines of the current run, for failure messages."""
        stdout = self._runs[-1].lines[-lines:] if self._runs else []
        stderr = self.stderr_path.read_text(errors="replace").splitlines()[-lines:]
        return "\n".join(["--- stdout", *stdout, "--- stderr", *stderr])

    # ---------------------------------------------------------------------------- lifecycle

    async def start(
        self, env: Mapping[str, str] | None = None, *, wait: bool = True, limit: float = DEADLINE
    ) -> None:
        """Spawn the daemon (``env`` is added to the scrubbed environment) and, unless
        ``wait=False``, wait until it is ready."""
        if self.running:
            raise RuntimeError(f"daemon {self.pid} is still running")
        loop = asyncio.get_running_loop()
        self._loop = loop
        extra: dict[str, str] = {}
        if self.notify_path is not None:
            self._bind_notify_socket(loop, self.notify_path)
            extra["NOTIFY_SOCKET"] = str(self.notify_path)
            if self.watchdog_usec is not None:
                extra["WATCHDOG_USEC"] = str(self.watchdog_usec)
        extra.update(env or {})
        with self.stderr_path.open("ab") as stderr:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                _WRAPPER,
                str(os.getpid()),
                "run",
                "--config",
                str(self.config_path),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=stderr,
                env=child_environment(extra),
                cwd=self.directory,
                start_new_session=True,  # a Ctrl-C at the terminal is for pytest, not for it
                limit=16 * 1024 * 1024,
            )
        run = _Run(len(self._runs) + 1, process)
        self._runs.append(run)
        self._supervisor = asyncio.create_task(
            self._supervise(run), name=f"daemon-run-{run.number}"
        )
        if wait:
            await self.wait_ready(limit)

    async def wait_ready(self, limit: float = DEADLINE) -> None:
        """Until the current run is ready: ``READY=1`` from its pid, or (without a notify
        socket) its control socket answering ``health``. Fails at once if it exits.

        The datagram and stdout are separate channels: the ``daemon_ready`` log line may be
        read after READY=1; `wait_log` it when a test needs it."""
        if self.notify_path is not None:
            await self.wait_notification("READY", "1", limit=limit)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit
        while True:
            self._raise_if_exited("ready")
            with contextlib.suppress(ControlConnectionError):
                async with ControlClient(self.socket_path, timeout=1.0) as client:
                    await client.health()
                    return
            if loop.time() > deadline:
                raise AssertionError(f"daemon not ready within {limit} s\n{self.output_tail()}")
            await asyncio.sleep(0.05)  # no event to await without a notify socket

    async def wait_notification(
        self, key: str, value: str | None = None, *, count: int = 1, limit: float = DEADLINE
    ) -> Notification:
        """The `count`-th datagram of the current run with ``key`` (equal to ``value``)."""

        def found() -> Notification | None:
            matching = [
                note
                for note in self._current().notifications
                if key in note.fields and (value is None or note.fields[key] == value)
            ]
            return matching[count - 1] if len(matching) >= count else None

        what = f"{count} × {key}={value if value is not None else '*'}"
        return await self._wait_for(found, what, limit)

    async def wait_log(self, event: str, limit: float = DEADLINE, **fields: Any) -> dict[str, Any]:
        """The first log line of the current run whose ``event`` (and given fields) match."""

        def found() -> dict[str, Any] | None:
            for line in self._current().events:
                if line.get("event") == event and all(line.get(k) == v for k, v in fields.items()):
                    return line
            return None

        return await self._wait_for(found, f"log event {event} {fields or ''}", limit)

    async def wait_exit(self, limit: float = DEADLINE) -> int:
        """Until the current run has exited and its output is read; its exit code."""
        run = self._current()
        supervisor = self._supervisor
        assert supervisor is not None
        try:
            await asyncio.wait_for(asyncio.shield(supervisor), limit)
        except TimeoutError:
            raise AssertionError(
                f"daemon {run.process.pid} still running after {limit} s\n{self.output_tail()}"
            ) from None
        assert run.returncode is not None
        return run.returncode

    def kill9(self) -> None:
        """SIGKILL the running daemon (no cleanup at all); `wait_exit` gives -9."""
        run = self._current()
        if run.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                run.process.kill()

    def signal(self, signum: int) -> None:
        """Send any signal to the running daemon."""
        run = self._current()
        if run.returncode is None:
            run.process.send_signal(signum)

    async def sigterm(self, limit: float = DEADLINE) -> int:
        """SIGTERM, as systemd stops the service; the exit code. A daemon that does not exit
        within ``limit`` seconds is killed and the test fails."""
        self.signal(signal.SIGTERM)
        try:
            return await self.wait_exit(limit)
        except AssertionError:
            self.kill9()
            await self.wait_exit()
            raise

    def client(self, timeout: float | None = DEADLINE) -> ControlClient:
        """A control client for this daemon's socket: ``async with daemon.client() as c:``."""
        return ControlClient(self.socket_path, timeout=timeout)

    async def close(self) -> None:
        """Kill a daemon still running, stop listening for notifications."""
        if self.running:
            self.kill9()
        if self._supervisor is not None:
            with contextlib.suppress(AssertionError):
                await self.wait_exit()
        if self._notify_socket is not None:
            if self._loop is not None:
                self._loop.remove_reader(self._notify_socket.fileno())
            self._notify_socket.close()
            self._notify_socket = None
            if self.notify_path is not None:
                self.notify_path.unlink(missing_ok=True)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
        if not self._owns_directory:
            return
        if exc is None:
            shutil.rmtree(self.directory, ignore_errors=True)
        else:
            print(f"daemon files kept in {self.directory}", file=sys.stderr)

    # ---------------------------------------------------------------------------- internals

    async def _wait_for(self, found: Callable[[], _T | None], what: str, limit: float) -> _T:
        """Re-check `found` whenever anything happens, until it gives a value."""
        try:
            async with asyncio.timeout(limit):
                while (result := found()) is None:
                    self._raise_if_exited(what, found)
                    await self._changes.wait()
        except TimeoutError:
            raise AssertionError(
                f"timed out after {limit} s waiting for {what}\n{self.output_tail()}"
            ) from None
        return result

    def _raise_if_exited(self, what: str, found: Callable[[], object] | None = None) -> None:
        run = self._current()
        if run.returncode is None:
            return
        if self._notify_socket is not None:
            self._on_datagrams()  # datagrams sent before the exit may not be read yet
        if found is None or found() is None:
            raise AssertionError(
                f"daemon exited with {run.returncode} before {what}\n{self.output_tail()}"
            )

    async def _supervise(self, run: _Run) -> None:
        stdout = run.process.stdout
        assert stdout is not None
        with self.log_path.open("ab") as log:
            async for raw in stdout:
                log.write(raw)
                log.flush()
                line = raw.decode(errors="replace").rstrip("\n")
                run.lines.append(line)
                with contextlib.suppress(ValueError):
                    parsed = json.loads(line)
                    if isinstance(parsed, dict):
                        run.events.append(parsed)
                self._changes.pulse()
        run.returncode = await run.process.wait()
        self._changes.pulse()

    def _bind_notify_socket(self, loop: asyncio.AbstractEventLoop, path: Path) -> None:
        if self._notify_socket is not None:
            return
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        path.unlink(missing_ok=True)
        sock.bind(str(path))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        sock.setblocking(False)
        self._notify_socket = sock
        loop.add_reader(sock.fileno(), self._on_datagrams)

    def _on_datagrams(self) -> None:
        sock = self._notify_socket
        assert sock is not None
        assert self._loop is not None
        while True:
            try:
                data, ancillary, _, _ = sock.recvmsg(4096, socket.CMSG_SPACE(_UCRED.size))
            except (BlockingIOError, InterruptedError):
                break
            pid: int | None = None
            for level, kind, payload in ancillary:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                    pid = _UCRED.unpack(payload[: _UCRED.size])[0]
            fields: dict[str, str] = {}
            for line in data.decode(errors="replace").splitlines():
                key, _, value = line.partition("=")
                fields[key] = value
            listening = self._control_socket_listening() if fields.get("READY") == "1" else None
            note = Notification(fields, pid, self._loop.time(), listening)
            run = self._runs[-1] if self._runs else None
            if run is not None and (pid is None or pid == run.process.pid):
                run.notifications.append(note)
            else:
                self.stray_notifications.append(note)
        self._changes.pulse()

    def _control_socket_listening(self) -> bool:
        """Does something accept on the control socket right now? (Unix connect does not
        block: it succeeds against a listening socket or fails at once.)"""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            probe.setblocking(False)
            try:
                probe.connect(str(self.socket_path))
            except OSError:
                return False
            return True


def _read_toml(path: Path) -> dict[str, Any]:
    with path.open("rb") as handle:
        return tomllib.load(handle)
