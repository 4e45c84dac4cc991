"""Every ladder parameter is set from the configuration, and the defaults agree."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest

from execd.config import ConfigError, load_settings
from execd.domain.ladder_types import LadderParams
from execd.engine.params import ladder_params


@pytest.fixture(autouse=True)
def _no_file(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    """Defaults only: no config file, no execd variables."""
    import os

    for name in list(os.environ):
        if "__" in name or name == "EXECD_CONFIG":
            monkeypatch.delenv(name)
    monkeypatch.chdir(str(tmp_path))


def test_config_defaults_are_the_ladder_defaults() -> None:
    """The config's seed defaults produce exactly the core's seed defaults."""
    assert ladder_params(load_settings()) == LadderParams()


def test_every_ladder_parameter_follows_its_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """Changing each config key changes the ladder (no config value that nothing reads)."""
    env = {
        "EXECUTION__ENABLE_SMART_EXECUTION": "false",
        "EXECUTION__MARKET_OPEN_DELAY_MINUTES": "7",
        "EXECUTION__MAX_SPREAD_PERCENT": "0.3",
        "EXECUTION__REPEG_THRESHOLD_PERCENT": "0.2",
        "EXECUTION__MAX_REPEGS_PER_ORDER": "4",
        "EXECUTION__MIN_BID_ASK_SIZE": "50",
        "EXECUTION__QUOTE_FRESHNESS_SECONDS": "3",
        "EXECUTION__BID_ANCHOR_OFFSET_CENTS": "0.02",
        "EXECUTION__ASK_ANCHOR_OFFSET_CENTS": "0.03",
        "BETTER_ORDERS__ENABLED": "false",
        "BETTER_ORDERS__APPLY_TO": "all",
        "BETTER_ORDERS__LEVERAGED_ETF_SYMBOLS": '["tqqq"]',
        "BETTER_ORDERS__MAX_SLIPPAGE_BPS": "25",
        "BETTER_ORDERS__OPEN_TIMEOUT_SECONDS": "1.5",
        "BETTER_ORDERS__NORMAL_TIMEOUT_SECONDS": "4",
        "BETTER_ORDERS__AGGRESSIVE_TIMEOUT_SECONDS": "2.5",
        "BETTER_ORDERS__MAX_REPEGS": "3",
        "BETTER_ORDERS__TICK_AGGRESSION": "2",
        "BETTER_ORDERS__TIGHT_SPREAD_MAX_CENTS": "2",
        "BETTER_ORDERS__NORMAL_SPREAD_MAX_CENTS": "6",
        "BETTER_ORDERS__WIDE_SPREAD_WAIT_SECONDS": "60",
        "BETTER_ORDERS__TIGHT_SLIPPAGE_BPS": "4",
        "BETTER_ORDERS__NORMAL_SLIPPAGE_BPS": "9",
        "BETTER_ORDERS__WIDE_SLIPPAGE_BPS": "14",
        "BETTER_ORDERS__TIGHT_WAIT_MINUTES": "1",
        "BETTER_ORDERS__NORMAL_WAIT_MINUTES": "2",
        "BETTER_ORDERS__WIDE_WAIT_MINUTES": "3",
        "BETTER_ORDERS__ENABLE_PREMARKET_ASSESSMENT": "false",
        "BETTER_ORDERS__WAIT_FOR_SPREADS_MINUTES": "3",
        "BETTER_ORDERS__NORMAL_EXECUTION_UNTIL_MINUTES": "6",
        "LADDER__REPEG_METHOD": "replace",
        "LADDER__QUOTE_WAIT_SECONDS": "6",
        "LADDER__VALIDATION_RECHECKS": "2",
        "LADDER__CONFIRM_TIMEOUT_SECONDS": "11",
        "LADDER__MAX_CONFIRM_RETRIES": "4",
        "LADDER__FALLBACK_TIMEOUT_SECONDS": "31",
        "EXECUTION__FALLBACK_COLLAR_BPS": "40",
        "LADDER__FALLBACK_REPRICES": "3",
        "LADDER__STALE_QUOTE_MAX_WAIT_SECONDS": "30",
        "LADDER__GATE_WAIT_SECONDS": "20",
        "LADDER__PASSIVE_TIMEOUT_SECONDS": "8",
        "LADDER__PASSIVE_PATIENCE_LOW_SECONDS": "200",
        "LADDER__PASSIVE_PATIENCE_NORMAL_SECONDS": "100",
        "LADDER__PASSIVE_PATIENCE_HIGH_SECONDS": "20",
        "LADDER__CLOSE_GUARD_SECONDS": "2.5",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    changed = ladder_params(load_settings())
    default = LadderParams()
    same = [
        f.name
        for f in dataclasses.fields(LadderParams)
        if getattr(changed, f.name) == getattr(default, f.name)
    ]
    # A collar and a plain market fallback exclude each other: checked below.
    assert same == ["fallback_order"]


def test_plain_market_fallback_is_an_explicit_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    """`fallback_order = "market"` chooses the seeds' market order; with a collar also set
    the config is refused (an existing config that set a collar stays collared)."""
    assert LadderParams().fallback_order == "collared"
    monkeypatch.setenv("EXECUTION__FALLBACK_ORDER", "market")
    assert ladder_params(load_settings()).fallback_order == "market"
    monkeypatch.setenv("EXECUTION__FALLBACK_COLLAR_BPS", "30")
    with pytest.raises(ConfigError, match="fallback_collar_bps"):
        load_settings()
    monkeypatch.delenv("EXECUTION__FALLBACK_ORDER")
    params = ladder_params(load_settings())
    assert (params.fallback_order, params.fallback_collar_bps) == ("collared", Decimal(30))
