"""systemd's notify protocol (sd_notify), without a dependency.

The daemon says READY=1 only once streams have data, orders are reconciled and the control
socket is bound; it pings WATCHDOG=1 from the event loop itself, so that a blocked loop stops
the pings and systemd restarts the service (DESIGN.md, systemd/execd.service). Outside
systemd (no NOTIFY_SOCKET) every call is a no-op.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping


class Notifier:
    """Sends state lines to the socket systemd named in $NOTIFY_SOCKET."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        # A leading "@" names a socket in the abstract namespace (sd_notify(3)).
        self._address = "\0" + address[1:] if address.startswith("@") else address
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        watched = usec.isdigit() and (not pid or pid == str(os.getpid()))
        self.watchdog_interval: float | None = int(usec) / 1e6 / 2 if watched else None
        """Ping every half of WatchdogSec, as sd_watchdog_enabled(3) recommends."""

    @property
    def enabled(self) -> bool:
        return bool(self._address)

    def notify(self, **fields: str) -> None:
        """Send e.g. notify(READY="1", STATUS="2 plans working")."""
        if not self._address:
            return
        message = "\n".join(f"{key}={value}" for key, value in fields.items()).encode()
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(self._address)
            sock.sendall(message)

    def ready(self, status: str) -> None:
        self.notify(READY="1", STATUS=status)

    def status(self, status: str) -> None:
        self.notify(STATUS=status)

    def watchdog(self) -> None:
        self.notify(WATCHDOG="1")

    def stopping(self, status: str) -> None:
        self.notify(STOPPING="1", STATUS=status)
