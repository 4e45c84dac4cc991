"""What an HTTP answer from Alpaca's REST APIs means: an error of the errors.py tree, or a model.

The REST gateway's reads, writes and retry shell all ask the same two questions of an
answer — "which error is this non-2xx?" and "does this body parse as alpaca-py's
model?" — so the answers live here, once, apart from the I/O that fetched them. Pure
functions of the bytes: no session, no clock, no retry. Also the two exceptions the
shell raises for a request that got no answer at all, which every retry loop matches on.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import pydantic

from execd.adapters.errors import (
    MalformedResponse,
    NotFound,
    RateLimited,
    Unauthorized,
    VenueRefused,
    VenueUnavailable,
)

__all__ = ["Answer", "NoAnswer", "NotSent", "answer_error", "json_list", "parse_model"]


@dataclass(frozen=True, slots=True)
class Answer:
    """One HTTP answer, read whole: the budget reads its headers, the callers its body."""

    status: int
    body: bytes
    headers: Mapping[str, str]

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise MalformedResponse(f"{self.status}: body is not JSON") from exc


class NoAnswer(Exception):
    """A request that got no HTTP answer (timeout, reset, refused connection)."""


class NotSent(NoAnswer):
    """A request that never left: no connection could be had (refused, or none free and
    none opened within the connect timeout). aiohttp raises these before writing a byte,
    so a write that fails so is not uncertain: there is nothing at the venue to settle."""


_M = TypeVar("_M", bound=pydantic.BaseModel)


def answer_error(answer: Answer) -> Exception:
    """Map a non-2xx answer to the errors.py tree, keeping Alpaca's code and message."""
    code: int | None = None
    message = answer.body.decode(errors="replace").strip()
    fields: dict[str, Any] | None = None
    try:
        decoded = json.loads(answer.body)
    except ValueError:
        decoded = None
    if isinstance(decoded, dict):
        fields = decoded
        raw_code = decoded.get("code")
        code = raw_code if isinstance(raw_code, int) else None
        message = str(decoded.get("message", message))
    status = answer.status
    if status == 401:
        return Unauthorized(status, code, message, fields)
    if status == 404:
        return NotFound(message, code)
    if status == 429:
        return RateLimited(f"429 {code}: {message}")
    if status >= 500:
        return VenueUnavailable(f"{status} {code}: {message[:200]}")
    return VenueRefused(status, code, message, fields)


def json_list(answer: Answer) -> list[Any]:
    """The body of a listing (orders, positions, assets, calendar): a JSON array."""
    decoded = answer.json()
    if not isinstance(decoded, list):
        raise MalformedResponse(f"expected a JSON array, got {type(decoded).__name__}")
    return decoded


def parse_model(model: type[_M], data: Any) -> _M:
    """Parse with alpaca-py's model; its validation error becomes `MalformedResponse`."""
    if not isinstance(data, dict):
        raise MalformedResponse(f"{model.__name__}: expected an object")
    try:
        return model(**data)
    except pydantic.ValidationError as exc:
        raise MalformedResponse(f"{model.__name__}: {exc}") from exc
