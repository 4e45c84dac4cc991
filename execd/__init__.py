"""execd: execute rebalance plans on Alpaca with a smart order ladder."""

__version__ = "0.1.0"
