"""Entry point of the `execd` command (placeholder until the CLI lands)."""

import sys


def main(argv: list[str] | None = None) -> int:
    """Run the execd command line."""
    del argv
    print("execd: not built yet", file=sys.stderr)
    return 2
