"""``python -m execd.bench [--full] [ITEM ...]``: run the benchmarks, print the table, write JSON.

`make bench` runs the quick profile (target: under 5 minutes on 2 cores, all items; each
item's wall time is printed against its budget, and the total with a line when it is over);
`make bench FULL=1` the long one. Items can be picked by name
(``ingest reaction scale budget logging quality``).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

from execd.bench.profiles import FULL, QUICK, Profile
from execd.bench.results import Figure, Results, render, render_timings

RESULTS = Path(".bench/results.json")

HEADER = """\
execd benchmarks — profile {profile}
The machine is shared and noisy: absolute figures move between runs. Each figure is compared
with a baseline measured side by side in the same run (interleaved rounds where it matters);
the ratios are what count. Figures are written to {path}.
"""


def _items(profile: Profile) -> dict[str, Callable[[], list[Figure]]]:
    # Imported lazily: an item that needs the SDK or the sim pays its imports only when run.
    def ingest() -> list[Figure]:
        from execd.bench import ingest as item

        return item.run(profile.ingest_quotes, profile.ingest_rounds, profile.ingest_sdk_quotes)

    def reaction() -> list[Figure]:
        from execd.bench import reaction as item

        return item.run(profile.reaction_events)

    def scale() -> list[Figure]:
        from execd.bench import scale as item

        return item.run(profile.scale_legs, profile.scale_limit_s)

    def budget() -> list[Figure]:
        from execd.bench import budget as item

        return item.run(profile.budget_legs, profile.budget_limit_s)

    def logging() -> list[Figure]:
        from execd.bench import logging_rate as item

        return item.run(profile.log_lines)

    def quality() -> list[Figure]:
        from execd.bench import quality as item

        return item.run(profile)

    return {
        "ingest": ingest,
        "reaction": reaction,
        "scale": scale,
        "budget": budget,
        "logging": logging,
        "quality": quality,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the chosen items (all by default); exit 1 if an item crashed."""
    parser = argparse.ArgumentParser(prog="python -m execd.bench", description=__doc__)
    parser.add_argument("--full", action="store_true", help="the long profile")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where to write the JSON")
    parser.add_argument("items", nargs="*", help="items to run (default: all)")
    args = parser.parse_args(argv)
    profile = FULL if args.full else QUICK
    items = _items(profile)
    chosen = args.items or list(items)
    unknown = [i for i in chosen if i not in items]
    if unknown:
        parser.error(f"unknown item(s) {unknown}; choose from {list(items)}")

    warnings.simplefilter("ignore", DeprecationWarning)  # alpaca-py's websockets.legacy
    from execd.logs import configure_logging

    configure_logging("error", "json")  # the daemon's code runs here: keep its lines quiet
    print(HEADER.format(profile=profile.name, path=args.out), flush=True)
    results = Results(profile.name)
    failed = []
    for name in chosen:
        began = time.monotonic()
        print(f"== {name} …", flush=True)
        try:
            figures = items[name]()
        except NotImplementedError as exc:
            results.notes.append(f"{name}: NOT BUILT — {exc}")
            print(f"   {name}: NOT BUILT — {exc}", flush=True)
            continue
        except Exception as exc:  # one broken item must not hide the others' figures
            failed.append(name)
            results.notes.append(f"{name} crashed: {exc!r}")
            print(f"   {name} CRASHED: {exc!r}", flush=True)
            continue
        finally:
            results.wall_s[name] = time.monotonic() - began
        results.extend(figures)
        print(render(figures), flush=True)
        print(f"   ({results.wall_s[name]:.0f} s)\n", flush=True)
    results.write(args.out)
    print("\nall figures\n" + render(results.figures))
    for note in results.notes:
        print(f"note: {note}")
    print("\n" + render_timings(results.wall_s, profile.item_budget_s, profile.total_budget_s))
    print(f"\nwritten to {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
