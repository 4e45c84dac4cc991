"""One leg's doorbell: the single future a leg sleeps on, rung by every input it waits for.

A leg waits for any of several inputs (its inbox, stop and reconcile requests, its
symbol's quote arrival, the data connection's link change, a REST quote re-read, its
deadline). It used to run a task per input for every wait and cancel them all when one
finished: five or six tasks created, cancelled and gathered per wake-up, which was half of
the daemon's time with 2,000 legs (issue 14, bench README §3). Now each input *rings*:
the inbox and the leg's own methods call `ring`, the stream's shared futures get a done
callback for the length of one sleep (removed after, so none pile up on a quiet symbol's
future), and the deadline is a `call_later` handle. One future per sleep, no task.

Level-triggered: a ring that comes while the leg is not asleep is remembered (`rung`), so
the next sleep returns at once; the leg `reset`s it before it looks at its inputs, so that
a ring after the look always counts.
"""

from __future__ import annotations

import asyncio
from typing import Any


class Doorbell:
    """See the module docstring; one per leg."""

    __slots__ = ("_bell", "_rung")

    def __init__(self) -> None:
        self._bell: asyncio.Future[None] | None = None
        self._rung = False

    @property
    def rung(self) -> bool:
        """Whether a ring came since the last `reset`."""
        return self._rung

    def reset(self) -> None:
        """Forget earlier rings: the caller is about to look at every input's state."""
        self._rung = False

    def ring(self) -> None:
        """Wake the sleeper at once, or make its next sleep return at once."""
        self._rung = True
        bell = self._bell
        if bell is not None and not bell.done():
            bell.set_result(None)

    def _source_done(self, _future: asyncio.Future[Any]) -> None:
        self.ring()

    async def sleep(self, seconds: float | None, sources: tuple[asyncio.Future[Any], ...]) -> None:
        """Sleep until a ring, until one of `sources` is done (at once if one is), or for
        `seconds` (None: no limit). The sources are shared futures: they get a callback
        for the length of the sleep, never a cancel. Cancelling the sleeper is prompt."""
        if self._rung:
            return  # answered by the caller's next look at its inputs: no turn lost
        if any(source.done() for source in sources):
            # A source done before the sleep: give the loop one turn, never return at once.
            # A caller whose look does not consume that source would otherwise spin without
            # ever letting the loop run (a frozen daemon, not merely a busy one).
            await asyncio.sleep(0)
            return
        loop = asyncio.get_running_loop()
        bell = self._bell = loop.create_future()
        for source in sources:
            source.add_done_callback(self._source_done)
        timer = None if seconds is None else loop.call_later(max(seconds, 0.0), self.ring)
        try:
            await bell
        finally:
            self._bell = None
            for source in sources:
                source.remove_done_callback(self._source_done)
            if timer is not None:
                timer.cancel()
