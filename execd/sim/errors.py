"""Alpaca's refusals, as the engine raises them.

Exception tree::

    SimError                 -> HTTP status + Alpaca body {"code", "message", **extra}
"""

from __future__ import annotations

from typing import Any

# Alpaca's 8-digit error codes (ALPACA.md §0.5).
CODE_FORBIDDEN = 40310000
CODE_UNPROCESSABLE = 42210000
CODE_INVALID_REQUEST = 40010001
CODE_NOT_FOUND = 40410000


class SimError(Exception):
    """An order/account request Alpaca would refuse; the server maps it to an HTTP response."""

    def __init__(
        self,
        status: int,
        message: str,
        code: int | None = None,
        extra: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra: dict[str, str] = dict(extra or {})

    def body(self) -> dict[str, Any]:
        """Alpaca's JSON error body; `code` is omitted when Alpaca sends none (e.g. 401)."""
        out: dict[str, Any] = {}
        if self.code is not None:
            out["code"] = self.code
        out["message"] = self.message
        out.update(self.extra)
        return out

    def __repr__(self) -> str:
        return f"SimError({self.status}, {self.message!r}, code={self.code})"


def unprocessable(message: str) -> SimError:
    """422 / 42210000: a request Alpaca understood but refuses (sub-penny, state, asset)."""
    return SimError(422, message, CODE_UNPROCESSABLE)


def invalid(message: str) -> SimError:
    """422 / 40010001: malformed request fields (Alpaca answers these with 422 too, §0.5)."""
    return SimError(422, message, CODE_INVALID_REQUEST)


def forbidden(message: str, extra: dict[str, str] | None = None) -> SimError:
    """403 / 40310000: buying power, quantity, fractionability, wash trade."""
    return SimError(403, message, CODE_FORBIDDEN, extra)


def not_found(message: str) -> SimError:
    """404 / 40410000: unknown order or position."""
    return SimError(404, message, CODE_NOT_FOUND)
