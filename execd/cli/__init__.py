"""The `execd` command line."""
