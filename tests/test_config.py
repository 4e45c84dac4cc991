"""Configuration: seed defaults, TOML + environment layering, clear errors, masked output."""

from __future__ import annotations

import tomllib
from decimal import Decimal
from pathlib import Path

import pytest

from execd.config import ConfigError, Settings, load_settings, render_toml

REPO = Path(__file__).resolve().parents[1]
_ENV = (
    "EXECD_CONFIG",
    "APCA_API_KEY_ID",
    "APCA_API_SECRET_KEY",
    "RUNTIME_DIRECTORY",
    "STATE_DIRECTORY",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Each test starts from no config file and no execd variables."""
    import os

    for name in list(os.environ):
        if "__" in name or name in _ENV:
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def test_seed_defaults() -> None:
    """Every seed parameter exists under its seed name with the seed's value."""
    s = load_settings()
    e, b = s.execution, s.better_orders
    assert e.enable_smart_execution is True
    assert e.market_open_delay_minutes == 5
    assert e.max_spread_percent == Decimal("0.25")
    assert e.repeg_threshold_percent == Decimal("0.10")
    assert e.max_repegs_per_order == 5
    assert e.min_bid_ask_size == Decimal("100")
    assert e.quote_freshness_seconds == 5
    assert e.bid_anchor_offset_cents == e.ask_anchor_offset_cents == Decimal("0.01")
    assert (b.open_timeout_seconds, b.normal_timeout_seconds, b.max_repegs) == (2.0, 3.0, 2)
    assert b.apply_to == "listed"
    assert b.tick_aggression == 1
    assert b.max_slippage_bps == Decimal("20")
    assert (b.tight_spread_max_cents, b.normal_spread_max_cents) == (Decimal(3), Decimal(5))
    assert (b.tight_slippage_bps, b.normal_slippage_bps, b.wide_slippage_bps) == tuple(
        Decimal(n) for n in (5, 10, 15)
    )
    assert (b.tight_wait_minutes, b.normal_wait_minutes, b.wide_wait_minutes) == (0, 1, 2)
    assert b.wide_spread_wait_seconds == 90
    assert b.enable_premarket_assessment is True
    assert b.leveraged_etf_symbols == ["TQQQ", "SPXL", "TECL", "UVXY", "LABU", "LABD", "SOXL"]


def test_shipped_config_equals_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """config/execd.toml documents the defaults; it must not drift from the code."""
    from_file = load_settings(REPO / "config" / "execd.toml")
    assert from_file == Settings()


def test_legacy_switch_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """EXECUTION__ENABLE_SMART_EXECUTION=false turns the ladder off (seed 000)."""
    monkeypatch.setenv("EXECUTION__ENABLE_SMART_EXECUTION", "false")
    assert load_settings().execution.enable_smart_execution is False


def test_environment_beats_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Nested env variables override the TOML file, which overrides the defaults."""
    path = tmp_path / "c.toml"
    path.write_text('[venue]\ntrading_url = "http://127.0.0.1:1"\n[log]\nlevel = "debug"\n')
    monkeypatch.setenv("VENUE__TRADING_URL", "http://127.0.0.1:8999")
    monkeypatch.setenv("API__SOCKET_PATH", "/tmp/x.sock")
    s = load_settings(path)
    assert s.venue.trading_url == "http://127.0.0.1:8999"
    assert s.api.socket_path == Path("/tmp/x.sock")
    assert s.log.level == "debug"


def test_config_path_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """EXECD_CONFIG names the file when --config is not given."""
    path = tmp_path / "other.toml"
    path.write_text("[plans]\noverlap_buys = true\n")
    monkeypatch.setenv("EXECD_CONFIG", str(path))
    assert load_settings().plans.overlap_buys is True


def test_alpaca_standard_key_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """APCA_API_KEY_ID / APCA_API_SECRET_KEY are honoured; VENUE__KEY_ID beats them."""
    monkeypatch.setenv("APCA_API_KEY_ID", "PKTEST1234")
    monkeypatch.setenv("APCA_API_SECRET_KEY", "s3cr3t-value")
    s = load_settings()
    assert s.venue.key_id is not None
    assert s.venue.key_id.get_secret_value() == "PKTEST1234"
    monkeypatch.setenv("VENUE__KEY_ID", "PKOTHER999")
    s = load_settings()
    assert s.venue.key_id is not None
    assert s.venue.key_id.get_secret_value() == "PKOTHER999"
    assert s.venue.secret_key is not None
    assert s.venue.secret_key.get_secret_value() == "s3cr3t-value"


@pytest.mark.parametrize(
    ("env", "value", "message"),
    [
        ("EXECUTION__MAX_SPREAD_PERCENT", "0", "execution.max_spread_percent: must be > 0"),
        ("EXECUTION__MAX_REPEGS_PER_ORDER", "many", "execution.max_repegs_per_order: must be"),
        ("BETTER_ORDERS__APPLY_TO", "some", "better_orders.apply_to: must be one of"),
        ("VENUE__KIND", "prod", "venue.kind: must be one of"),
        ("VENUE__TRADING_URL", "localhost:1", "venue.trading_url: not a URL"),
        ("SIM__START", "9:30", "sim.start: expected HH:MM"),
        ("GATEWAY__CANCEL_RESERVE", "500", "leave no room for orders"),
        ("LADDER__CLOSE_GUARD_SECONDS", "nan", "close_guard_seconds: Input should be a finite"),
        ("LADDER__CLOSE_GUARD_SECONDS", "-0.5", "ladder.close_guard_seconds: must be"),
        ("LADDER__CLOSE_GUARD_SECONDS", "1e9", "ladder.close_guard_seconds: must be"),
    ],
)
def test_bad_value_names_the_key(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str, message: str
) -> None:
    """A bad value fails with the key path and the reason, never a traceback."""
    monkeypatch.setenv(env, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert message in str(caught.value)


def test_unknown_key_in_file(tmp_path: Path) -> None:
    """A misspelt key is an error, not silently ignored (it would be a setting nothing reads)."""
    path = tmp_path / "c.toml"
    path.write_text("[execution]\nmax_spread_pct = 1\n")
    with pytest.raises(ConfigError, match=r"execution\.max_spread_pct: unknown key"):
        load_settings(path)


def test_missing_and_broken_files(tmp_path: Path) -> None:
    """A named file that does not exist or is not TOML is a clear error."""
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(tmp_path / "nope.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[execution\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_settings(broken)


def test_render_masks_secrets_and_round_trips(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`execd config` never prints a secret, and its output is a loadable config."""
    monkeypatch.setenv("APCA_API_SECRET_KEY", "very-secret-value")
    text = render_toml(load_settings())
    assert "very-secret-value" not in text
    data = tomllib.loads(text)
    assert data["venue"]["secret_key"] == "********", "no character of a secret is shown"
    assert data["execution"]["max_spread_percent"] == 0.25
    monkeypatch.delenv("APCA_API_SECRET_KEY")
    path = tmp_path / "rendered.toml"
    path.write_text(text.replace('secret_key = "********"\n', ""))
    assert load_settings(path).better_orders == load_settings().better_orders


def test_overrides_beat_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    """CLI flags such as --venue are passed as overrides and win over env and file."""
    monkeypatch.setenv("VENUE__KIND", "paper")
    monkeypatch.setenv("APCA_API_SECRET_KEY", "abcdefghij")
    s = load_settings(venue={"kind": "sim"})
    assert s.venue.kind == "sim"
    assert s.venue.secret_key is not None
    assert s.venue.secret_key.get_secret_value() == "abcdefghij"


def test_paper_urls_follow_kind_and_feed() -> None:
    """paper/live default to Alpaca's hosts; the data stream path follows the feed."""
    s = load_settings(venue={"kind": "paper", "feed": "sip"})
    assert s.venue.resolved_url("trading_url") == "https://paper-api.alpaca.markets"
    assert s.venue.resolved_url("data_stream_url") == "wss://stream.data.alpaca.markets/v2/sip"
    assert load_settings().venue.resolved_url("trading_url") is None


def test_config_prints_whole_decimals_as_integers() -> None:
    """`execd config` prints `min_bid_ask_size = 100` (shares), not `100.0`; a fraction stays
    exact (issue 10 item 9)."""
    from execd.config import Settings, render_toml

    text = render_toml(Settings())
    assert "min_bid_ask_size = 100\n" in text
    assert "max_spread_percent = 0.25\n" in text
    assert "repeg_threshold_percent = 0.10\n" in text


@pytest.mark.parametrize("text", ["٢٠", "２０", "2_0"])
def test_a_decimal_setting_in_another_script_is_refused(
    monkeypatch: pytest.MonkeyPatch, text: str
) -> None:
    """Python's Decimal reads "٢٠" as 20 and "2_0" as 20; a setting from the environment
    must be an ASCII number, as a plan's numbers are, or the daemon refuses to start."""
    monkeypatch.setenv("BETTER_ORDERS__MAX_SLIPPAGE_BPS", text)
    with pytest.raises(ConfigError) as refused:
        load_settings()
    assert "max_slippage_bps" in str(refused.value)
    monkeypatch.setenv("BETTER_ORDERS__MAX_SLIPPAGE_BPS", "25")
    assert load_settings().better_orders.max_slippage_bps == Decimal(25)
