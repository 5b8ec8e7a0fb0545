"""Rich tables and lines from the services' typed results, one module per subject. Nothing here queries
or decides.

Every piece of data (names, keys, titles, messages) goes in as ``Text``, never as a markup string, so a
name such as ``[/]``, ``[bold]`` or ``[model:x]`` prints literally and cannot break the output.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence

from rich.console import JustifyMethod
from rich.table import Table
from rich.text import Text

from solver.units import format_usd

Column = tuple[str, JustifyMethod]
LEFT: JustifyMethod = "left"


def table(
    title: str,
    columns: Iterable[Column | str],
    *,
    footers: Sequence[str] = (),
    wrapping: Collection[str] | None = None,
) -> Table:
    """A table with a plain-text title and headers (a bare name is a left-aligned column). With
    ``wrapping``, only the columns it names wrap their text; the others keep each cell on one line."""
    result = Table(title=Text(title), title_justify="left", show_footer=bool(footers))
    for index, column in enumerate(columns):
        name, justify = (column, LEFT) if isinstance(column, str) else column
        footer = Text(footers[index]) if footers else ""
        no_wrap = wrapping is not None and name not in wrapping
        result.add_column(Text(name), justify=justify, footer=footer, no_wrap=no_wrap)
    return result


def add_row(result: Table, *cells: str) -> None:
    result.add_row(*(Text(cell) for cell in cells))


def usd_or_dash(micro: int | None, decimals: int = 2) -> str:
    return "-" if micro is None else format_usd(micro, decimals)
