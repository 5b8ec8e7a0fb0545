"""The app's operations as FastAPI 0.16x holds them (routers included under prefixes stay nested): each
route with its whole path template and methods, for metrics labels and the ``Allow`` header of a 405."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from fastapi.routing import iter_route_contexts
from starlette.routing import BaseRoute, compile_path


@dataclass(frozen=True)
class Operation:
    route_id: int
    """``id()`` of the route object a matched request carries in ``scope["route"]``."""
    path: str
    """The whole path template: ``/v1/offers/{offer_id}``."""
    methods: frozenset[str]
    regex: re.Pattern[str]


def operations(routes: Sequence[BaseRoute]) -> list[Operation]:
    found = []
    for context in iter_route_contexts(routes):
        path = context.path_format or context.path
        if not path:
            continue
        regex, _, _ = compile_path(path)
        found.append(Operation(id(context.original_route), path, frozenset(context.methods or ()), regex))
    return found


def allowed_methods(routes: Sequence[BaseRoute], path: str) -> list[str]:
    """Every method some route serves at ``path`` (Starlette's own 405 names only the first route's)."""
    return sorted({method for op in operations(routes) if op.regex.fullmatch(path) for method in op.methods})
