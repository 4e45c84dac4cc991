"""The configuration as the ladder sees it: `Settings` → `LadderParams`.

One function, so that the names of `config/execd.toml` (the seeds' names) and of the pure
core can differ without anything being lost on the way; a test checks that every ladder
parameter comes from the config.
"""

from __future__ import annotations

from execd.config import Settings
from execd.domain.ladder_types import DEFAULT_FALLBACK_COLLAR_BPS, LadderParams


def ladder_params(settings: Settings) -> LadderParams:
    """Every ladder parameter from its config key."""
    e, b, lad = settings.execution, settings.better_orders, settings.ladder
    return LadderParams(
        enable_smart_execution=e.enable_smart_execution,
        market_open_delay_minutes=e.market_open_delay_minutes,
        max_spread_percent=e.max_spread_percent,
        repeg_threshold_percent=e.repeg_threshold_percent,
        max_repegs_per_order=e.max_repegs_per_order,
        min_bid_ask_size=e.min_bid_ask_size,
        quote_freshness_seconds=e.quote_freshness_seconds,
        bid_anchor_offset_cents=e.bid_anchor_offset_cents,
        ask_anchor_offset_cents=e.ask_anchor_offset_cents,
        better_orders_enabled=b.enabled,
        leveraged_etf_symbols=frozenset(b.leveraged_etf_symbols),
        apply_to=b.apply_to,
        max_slippage_bps=b.max_slippage_bps,
        open_timeout_seconds=b.open_timeout_seconds,
        normal_timeout_seconds=b.normal_timeout_seconds,
        aggressive_timeout_seconds=b.aggressive_timeout_seconds,
        max_repegs=b.max_repegs,
        tick_aggression=b.tick_aggression,
        tight_spread_max_cents=b.tight_spread_max_cents,
        normal_spread_max_cents=b.normal_spread_max_cents,
        wide_spread_wait_seconds=b.wide_spread_wait_seconds,
        premarket_tight_slippage_bps=b.tight_slippage_bps,
        premarket_normal_slippage_bps=b.normal_slippage_bps,
        premarket_wide_slippage_bps=b.wide_slippage_bps,
        recommended_wait_tight_minutes=float(b.tight_wait_minutes),
        recommended_wait_normal_minutes=float(b.normal_wait_minutes),
        recommended_wait_wide_minutes=float(b.wide_wait_minutes),
        enable_premarket_assessment=b.enable_premarket_assessment,
        wait_for_spreads_minutes=float(b.wait_for_spreads_minutes),
        normal_until_minutes=float(b.normal_execution_until_minutes),
        repeg_method=lad.repeg_method,
        quote_wait_seconds=lad.quote_wait_seconds,
        validation_rechecks=lad.validation_rechecks,
        confirm_timeout_seconds=lad.confirm_timeout_seconds,
        max_confirm_retries=lad.max_confirm_retries,
        fallback_timeout_seconds=lad.fallback_timeout_seconds,
        fallback_order=e.fallback_order,
        fallback_collar_bps=(
            DEFAULT_FALLBACK_COLLAR_BPS if e.fallback_collar_bps is None else e.fallback_collar_bps
        ),
        fallback_reprices=lad.fallback_reprices,
        stale_quote_max_wait_seconds=lad.stale_quote_max_wait_seconds,
        gate_wait_seconds=lad.gate_wait_seconds,
        passive_timeout_seconds=lad.passive_timeout_seconds,
        passive_patience_low_seconds=lad.passive_patience_low_seconds,
        passive_patience_normal_seconds=lad.passive_patience_normal_seconds,
        passive_patience_high_seconds=lad.passive_patience_high_seconds,
        close_guard_seconds=lad.close_guard_seconds,
    )
