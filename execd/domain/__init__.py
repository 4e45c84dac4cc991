"""The functional core: pure decisions and values, no asyncio, sockets, clocks or environment.

Everything here takes data (including `now`) and returns data, so it can be
tested exhaustively without I/O. Adapters and the engine import this package;
it never imports them (tests/test_layering.py enforces that).
"""
