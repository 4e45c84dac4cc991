"""execd: execute rebalance plans on Alpaca with a smart order ladder."""

from execd import lazy_imports as _lazy_imports

__version__ = "0.1.0"

# Before any execd module can import alpaca-py: pandas is loaded only if something uses it.
_lazy_imports.install()
