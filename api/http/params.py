"""Query parameter types shared by the routers."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime


def _to_utc(value: dt.datetime) -> dt.datetime:
    try:
        return value.astimezone(dt.UTC)
    except OverflowError:
        raise ValueError("the time is out of range once converted to UTC") from None


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]
"""An ISO 8601 time with its offset (``2026-12-01T12:00:00Z``), converted to UTC; a time without an
offset is 422 (a naive time is where time-zone bugs come from)."""
