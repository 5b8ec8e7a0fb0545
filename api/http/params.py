"""Query parameter types shared by the routers."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BeforeValidator

RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")


def _rfc3339(value: Any) -> Any:
    """Only an RFC 3339 date-time, as the schema says: no Unix timestamps, dates alone or times without
    an offset (which pydantic would otherwise read)."""
    if isinstance(value, dt.datetime):
        return value
    if not isinstance(value, str) or RFC3339.fullmatch(value) is None:
        raise ValueError("expected an RFC 3339 date-time with its offset, e.g. 2026-12-01T12:00:00Z")
    return value


def _to_utc(value: dt.datetime) -> dt.datetime:
    try:
        return value.astimezone(dt.UTC)
    except OverflowError:
        raise ValueError("the time is out of range once converted to UTC") from None


UtcDatetime = Annotated[AwareDatetime, BeforeValidator(_rfc3339), AfterValidator(_to_utc)]
"""An ISO 8601 time with its offset (``2026-12-01T12:00:00Z``), converted to UTC; a time without an
offset is 422 (a naive time is where time-zone bugs come from)."""
