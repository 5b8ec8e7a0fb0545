"""Pages of a list: ``?limit=&offset=`` in, ``items`` with ``next_offset`` (null on the last page) out."""

from __future__ import annotations

from typing import Annotated, Generic, TypeVar

from fastapi import Depends, Query
from pydantic import BaseModel, Field

MAX_PAGE = 500
T = TypeVar("T")


class PageQuery(BaseModel):
    limit: int
    offset: int

    def next_offset(self, returned: int) -> int | None:
        """The offset of the next page when this one came back full (one row more was asked for)."""
        return self.offset + self.limit if returned > self.limit else None


async def _page_query(  # async: no I/O, so no hop to the thread pool
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description=f"Items per page, 1..{MAX_PAGE}.")] = 50,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1, description="Items to skip.")] = 0,
) -> PageQuery:
    return PageQuery(limit=limit, offset=offset)


PageDep = Annotated[PageQuery, Depends(_page_query)]


class Page(BaseModel, Generic[T]):
    items: list[T]
    limit: int
    offset: int
    next_offset: int | None = Field(description="Offset of the next page; null on the last one.")

    @classmethod
    def of(cls, rows: list[T], page: PageQuery) -> Page[T]:
        """A page from up to ``limit + 1`` rows (query ``limit + 1`` to learn whether more follow)."""
        return cls(
            items=rows[: page.limit],
            limit=page.limit,
            offset=page.offset,
            next_offset=page.next_offset(len(rows)),
        )
