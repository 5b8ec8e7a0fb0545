"""Readable validation messages: every problem on its own line, led by the path of the bad field."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import ValidationError


def field_path(loc: Sequence[int | str]) -> str:
    """``("models", 2, "profiles", 0, "gpus_per_replica")`` -> ``models[2].profiles[0].gpus_per_replica``."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path or "(document)"


def describe_validation_error(error: ValidationError, *, prefix: str = "") -> list[str]:
    lines = []
    for item in error.errors(include_url=False):
        message = item["msg"].removeprefix("Value error, ")
        lines.append(f"{prefix}{field_path(item['loc'])}: {message}")
    return lines


class InputError(ValueError):
    """Bad input a user can fix: a file, document, option value or argument that cannot be used as given.

    The message names what is wrong (the file and line, the field, the value) and is fit for a terminal;
    the command line reports it as one error with exit status 1, the API as a client error. Every error
    type for bad user input derives from it, so callers catch one type."""


class SpecError(InputError):
    """A document (fleet or scenario file) failed validation; ``problems`` holds one line per bad field."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        shown = "\n".join(f"  {line}" for line in problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        super().__init__(f"{source}: {len(problems)} problem(s)\n{shown}{more}")
