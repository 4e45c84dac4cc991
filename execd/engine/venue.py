"""Which venue the daemon talks to: Alpaca's URLs, a separate `execd sim`, or one in-process.

The daemon never knows whether it talks to the simulator or to Alpaca (DESIGN.md "The
venue"): this module only turns the configuration into four URLs and a key pair. With
`venue.kind = "sim"` and no URLs configured, it starts the simulated venue inside the
process on a loopback port, and the daemon then reaches it over real sockets exactly as it
would reach Alpaca.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import date, time
from decimal import Decimal
from typing import TYPE_CHECKING

import structlog

from execd.config import ConfigError, Settings, SimSection
from execd.sim.config import SimConfig

if TYPE_CHECKING:
    # Imported where the in-process venue starts: a daemon talking to Alpaca (or to a
    # separate `execd sim`) never loads the simulator's server (aiohttp.web and friends).
    from execd.sim.venue import SimVenue

_log = structlog.get_logger(__name__)

_URL_KEYS = ("trading_url", "trading_stream_url", "data_url", "data_stream_url")
SIM_DEFAULT_START = time(10, 0, 0)


@dataclass(frozen=True, slots=True)
class Endpoints:
    """Where to connect, and with which keys."""

    kind: str
    trading_url: str
    trading_stream_url: str
    data_url: str
    data_stream_url: str
    key_id: str
    secret_key: str
    feed: str
    sim: SimVenue | None = field(default=None, repr=False, compare=False)
    """The in-process simulated venue, when this process runs one (tests reach its
    history and fault helpers through it); None for Alpaca or a separate `execd sim`."""

    def redacted(self) -> dict[str, str]:
        """For the start-up log line: URLs, never keys."""
        return {
            "venue": self.kind,
            "feed": self.feed,
            **{key: getattr(self, key) for key in _URL_KEYS},
        }


def sim_config(section: SimSection) -> SimConfig:
    """The in-process venue's configuration from the `[sim]` section."""
    start = SIM_DEFAULT_START
    if section.start is not None:
        start = time.fromisoformat(section.start)
    return SimConfig(
        scenario=section.scenario,
        tape=section.tape,
        seed=section.seed,
        start=start,
        speed=section.speed,
        symbols=tuple(section.symbols) if section.symbols is not None else None,
        cash=section.cash,
        positions={symbol.upper(): Decimal(qty) for symbol, qty in section.positions.items()},
        start_date=None if section.date is None else date.fromisoformat(section.date),
        partial_fill_rate=section.partial_fill_rate,
        multiplier=section.multiplier,
        shorting_enabled=section.shorting_enabled,
    )


def _configured(settings: Settings) -> dict[str, str | None]:
    return {key: settings.venue.resolved_url(key) for key in _URL_KEYS}


def _keys(settings: Settings, default: tuple[str, str] | None) -> tuple[str, str]:
    key_id, secret = settings.venue.key_id, settings.venue.secret_key
    if key_id is not None and secret is not None:
        return key_id.get_secret_value(), secret.get_secret_value()
    if default is not None:
        return default
    raise ConfigError(
        [
            f"venue.key_id / venue.secret_key: required for venue.kind = {settings.venue.kind}"
            " (set APCA_API_KEY_ID and APCA_API_SECRET_KEY)"
        ]
    )


@asynccontextmanager
async def open_venue(settings: Settings) -> AsyncIterator[Endpoints]:
    """Resolve the venue, starting the in-process simulator when that is what is configured."""
    urls = _configured(settings)
    feed = settings.venue.feed
    if settings.venue.kind == "sim" and all(value is None for value in urls.values()):
        from execd.sim.venue import SimVenue

        async with SimVenue(sim_config(settings.sim)) as venue:
            data_stream = venue.data_stream_url.rsplit("/", 1)[0] + f"/{feed}"
            yield Endpoints(
                kind="sim",
                trading_url=venue.trading_url,
                trading_stream_url=venue.trading_stream_url,
                data_url=venue.data_url,
                data_stream_url=data_stream,
                key_id=venue.key_id,
                secret_key=venue.secret_key,
                feed=feed,
                sim=venue,
            )
        return
    missing = [f"venue.{key}" for key, value in urls.items() if value is None]
    if missing:
        raise ConfigError(
            [f"{name}: required when the other venue URLs are set" for name in missing]
        )
    sim = SimConfig()
    default_keys = (sim.key_id, sim.secret_key) if settings.venue.kind == "sim" else None
    key_id, secret = _keys(settings, default_keys)
    found = {key: value for key, value in urls.items() if value is not None}
    yield Endpoints(
        kind=settings.venue.kind,
        trading_url=found["trading_url"],
        trading_stream_url=found["trading_stream_url"],
        data_url=found["data_url"],
        data_stream_url=found["data_stream_url"],
        key_id=key_id,
        secret_key=secret,
        feed=feed,
    )
