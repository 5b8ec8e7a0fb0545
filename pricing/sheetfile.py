"""Records that people write by hand, from CSV or YAML, with the line of every value.

Price sheets (``pricing.pricesheet``) and discount overlays (``pricing.discounts``) share this reader. Every
value comes back as text, exactly as written (YAML scalars are not turned into floats or dates), so that the
same parsers check a CSV cell and a YAML value and a problem is reported as ``file:line: column c: ...``
(``pricing.catalog.CatalogRowError``) in both formats.

CSV: a header row, then one record per line; blank lines and lines whose first cell starts with ``#`` are
skipped. YAML: either a list of mappings, or a mapping with the list under ``list_key``, an optional
``defaults`` mapping whose values every record inherits unless it sets its own, and optional top-level
``meta_keys`` (``source``).
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import yaml

from pricing.catalog import CatalogRowError

T = TypeVar("T")

YAML_SUFFIXES = (".yaml", ".yml")
DEFAULTS_KEY = "defaults"


@dataclass
class SheetRecord:
    """One record (a CSV row or a YAML list item) as text, with where each value was written."""

    file: str
    line: int
    values: dict[str, str]
    value_lines: dict[str, int]
    errors: list[CatalogRowError]
    reported: set[str] = field(default_factory=set)
    """Columns with a problem already reported (a second one on the same column would only repeat it)."""

    def __getitem__(self, column: str) -> str:
        return self.values.get(column, "").strip()

    def error(self, column: str, message: str) -> None:
        line = self.value_lines.get(column, self.line)
        self.errors.append(CatalogRowError(self.file, line, column, message))
        self.reported.add(column)

    def parse(self, column: str, parser: Callable[[str], T]) -> T | None:
        """``parser(value)``; a ValueError becomes an error on this column and None is returned.

        A column whose problem was already reported (missing, malformed in the file) gives None quietly.
        """
        if column in self.reported:
            return None
        try:
            return parser(self[column])
        except ValueError as exc:
            self.error(column, str(exc))
            return None


@dataclass
class SheetDocument:
    file: str
    meta: dict[str, str] = field(default_factory=dict)
    records: list[SheetRecord] = field(default_factory=list)


def read_sheet(
    path: Path,
    *,
    list_key: str,
    columns: Iterable[str],
    required: Iterable[str],
    meta_keys: Iterable[str] = (),
    errors: list[CatalogRowError],
) -> SheetDocument:
    """Read ``path`` (CSV, or YAML by its suffix) into records, appending every problem to ``errors``.

    Unknown columns and missing required columns are problems; a record with a problem is still
    returned (its values may be partial) so that the caller can report every problem of every record.
    """
    allowed = tuple(columns)
    needed = tuple(required)
    name = path.name
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        errors.append(CatalogRowError(name, 0, "", f"cannot read the file: {exc}"))
        return SheetDocument(file=name)
    if path.suffix.lower() in YAML_SUFFIXES:
        return _read_yaml(name, text, list_key, allowed, needed, tuple(meta_keys), errors)
    return _read_csv(name, text, allowed, needed, errors)


# ------------------------------------------------------------------------------------------------- CSV


def _read_csv(
    name: str, text: str, allowed: tuple[str, ...], needed: tuple[str, ...], errors: list[CatalogRowError]
) -> SheetDocument:
    document = SheetDocument(file=name)
    reader = csv.reader(text.splitlines())
    header: list[str] | None = None
    for record in reader:
        line = reader.line_num
        if not record or not any(cell.strip() for cell in record) or record[0].lstrip().startswith("#"):
            continue
        if header is None:
            header = [cell.strip() for cell in record]
            if not _header_ok(name, line, header, allowed, needed, errors):
                return document
            continue
        row = SheetRecord(name, line, {}, {}, errors)
        if len(record) != len(header):
            row.error("", f"expected {len(header)} fields, found {len(record)}")
            continue
        row.values = dict(zip(header, record, strict=True))
        document.records.append(row)
    if header is None:
        errors.append(CatalogRowError(name, 1, "", "empty file (no header)"))
    return document


def _header_ok(
    name: str,
    line: int,
    header: list[str],
    allowed: tuple[str, ...],
    needed: tuple[str, ...],
    errors: list[CatalogRowError],
) -> bool:
    count = len(errors)
    for column in needed:
        if column not in header:
            errors.append(CatalogRowError(name, line, column, "missing column"))
    for column in header:
        if column not in allowed:
            errors.append(
                CatalogRowError(name, line, column, f"unknown column (expected {', '.join(allowed)})")
            )
    if len(set(header)) != len(header):
        errors.append(CatalogRowError(name, line, "", "duplicate column names"))
    return len(errors) == count


# ------------------------------------------------------------------------------------------------ YAML


def _read_yaml(
    name: str,
    text: str,
    list_key: str,
    allowed: tuple[str, ...],
    needed: tuple[str, ...],
    meta_keys: tuple[str, ...],
    errors: list[CatalogRowError],
) -> SheetDocument:
    document = SheetDocument(file=name)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 0
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        errors.append(CatalogRowError(name, line, "", f"not valid YAML: {problem}"))
        return document
    if root is None:
        errors.append(CatalogRowError(name, 1, "", f"empty document (expected a list under {list_key!r})"))
        return document
    defaults: dict[str, tuple[str, int]] = {}
    items: yaml.Node | None = root
    if isinstance(root, yaml.MappingNode):
        items = None
        for key_node, value_node in root.value:
            key = _scalar_text(key_node)
            line = key_node.start_mark.line + 1
            if key == list_key:
                items = value_node
            elif key == DEFAULTS_KEY:
                defaults, _ = _yaml_mapping(name, value_node, allowed, errors)
            elif key in meta_keys and isinstance(value_node, yaml.ScalarNode):
                document.meta[key] = _scalar_text(value_node)
            else:
                expected = ", ".join((list_key, DEFAULTS_KEY, *meta_keys))
                errors.append(CatalogRowError(name, line, key, f"unknown key (expected {expected})"))
        if items is None:
            errors.append(
                CatalogRowError(name, 1, list_key, f"missing: the list of records under {list_key!r}")
            )
            return document
    if not isinstance(items, yaml.SequenceNode):
        line = items.start_mark.line + 1 if items is not None else 1
        errors.append(CatalogRowError(name, line, list_key, "expected a list of records"))
        return document
    for item in items.value:
        line = item.start_mark.line + 1
        row = SheetRecord(name, line, {}, {}, errors)
        if not isinstance(item, yaml.MappingNode):
            row.error("", "expected a mapping of column: value")
            continue
        own, malformed = _yaml_mapping(name, item, allowed, errors)
        values = {**defaults, **own}
        row.values = {key: text for key, (text, _) in values.items()}
        row.value_lines = {key: value_line for key, (_, value_line) in values.items()}
        row.reported |= malformed
        for column in needed:
            if column not in row.values and column not in malformed:
                row.error(column, "missing column")
        document.records.append(row)
    return document


def _yaml_mapping(
    name: str, node: yaml.Node, allowed: tuple[str, ...], errors: list[CatalogRowError]
) -> tuple[dict[str, tuple[str, int]], set[str]]:
    """A mapping of scalar values as {column: (text, line)}, and the columns given in a wrong shape."""
    line = node.start_mark.line + 1
    if not isinstance(node, yaml.MappingNode):
        errors.append(CatalogRowError(name, line, "", "expected a mapping of column: value"))
        return {}, set()
    values: dict[str, tuple[str, int]] = {}
    malformed: set[str] = set()
    for key_node, value_node in node.value:
        key = _scalar_text(key_node)
        value_line = value_node.start_mark.line + 1
        if key not in allowed:
            errors.append(
                CatalogRowError(name, value_line, key, f"unknown column (expected {', '.join(allowed)})")
            )
            continue
        if key in values:
            errors.append(CatalogRowError(name, value_line, key, "given twice"))
            continue
        if not isinstance(value_node, yaml.ScalarNode):
            errors.append(
                CatalogRowError(name, value_line, key, "expected a single value, not a list or mapping")
            )
            malformed.add(key)
            continue
        values[key] = (_scalar_text(value_node), value_line)
    return values, malformed


def _scalar_text(node: yaml.Node) -> str:
    if not isinstance(node, yaml.ScalarNode):
        return ""
    if (
        node.tag == "tag:yaml.org,2002:null"
        and node.style is None
        and node.value in ("", "~", "null", "Null", "NULL")
    ):
        return ""
    return str(node.value)
