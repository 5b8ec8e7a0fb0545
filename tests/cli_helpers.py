"""Running ``gpuplan`` in tests and reading its tables by their headers."""

from __future__ import annotations

from collections.abc import Callable

from typer.testing import CliRunner

from api.cli.app import Runtime
from api.cli.commands import app

Invoke = Callable[..., tuple[int, str]]

WIDTH = "250"
"""Console width for tests (``COLUMNS``): wide enough that no table cell wraps."""


def invoker(runtime: Runtime | None = None) -> Invoke:
    """``invoke(*args) -> (exit status, stdout and stderr)``; ``runtime`` replaces the default one
    (clock, collectors)."""
    runner = CliRunner()

    def invoke(*args: str) -> tuple[int, str]:
        result = runner.invoke(app, list(args), obj=runtime, env={"COLUMNS": WIDTH})
        return result.exit_code, result.output

    return invoke


def table_rows(output: str, title: str) -> list[dict[str, str]]:
    """The body rows of the rich table printed under ``title``, each as {header: cell text}.

    Tables in tests are printed wide enough that cells do not wrap, so one line is one row; a title longer
    than its table wraps, so its first line is looked for."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if _starts(title, line.strip()))
    header_line = next(line for line in lines[start + 1 :] if line.startswith("┃"))
    headers = [cell.strip() for cell in header_line.strip("┃").split("┃")]
    body_start = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("┡")) + 1
    rows = []
    for line in lines[body_start:]:
        if not line.startswith("│"):
            break
        cells = [cell.strip() for cell in line.strip().strip("│").split("│")]
        rows.append(dict(zip(headers, cells, strict=True)))
    return rows


def _starts(title: str, line: str) -> bool:
    return line == title or (len(line) >= min(len(title), 20) and title.startswith(line))
