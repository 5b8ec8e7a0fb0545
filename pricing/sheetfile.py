"""Records that people write by hand, from CSV or YAML, with the line of every value.

Price sheets (``pricing.pricesheet``) and discount overlays (``pricing.discounts``) share this reader. Every
value comes back as text, exactly as written (YAML scalars are not turned into floats or dates), so that the
same row model (``pricing.rows``) checks a CSV cell and a YAML value and a problem is reported as
``file:line: column c: ...`` (``pricing.rows.RowError``) in both formats. The file itself is read by
``pricing.files`` (size limit, UTF-8, no devices; YAML alias bombs refused).

CSV: a header row, then one record per line; blank lines and lines whose first cell starts with ``#`` are
skipped. YAML: either a list of mappings, or a mapping with the list under ``list_key``, an optional
``defaults`` mapping whose values every record inherits unless it sets its own, and optional top-level
``meta_keys`` (``source``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from pricing.files import UnreadableFileError, YamlDocumentError, compose_yaml, read_text
from pricing.rows import RawRecord, RowError, RowModel, columns, read_csv_records

YAML_SUFFIXES = (".yaml", ".yml")
DEFAULTS_KEY = "defaults"


@dataclass
class SheetDocument:
    file: str
    meta: dict[str, str] = field(default_factory=dict)
    records: list[RawRecord] = field(default_factory=list)


def read_sheet(
    path: Path,
    model: type[RowModel],
    *,
    list_key: str,
    meta_keys: tuple[str, ...] = (),
    errors: list[RowError],
) -> SheetDocument:
    """Read ``path`` (CSV, or YAML by its suffix) into records of ``model``'s columns; every problem of the
    file itself (unreadable, a bad header or YAML shape) goes to ``errors``.

    The records are not checked yet (``checked`` does that); a record with a problem already reported is
    still returned, so that the caller can report every problem of every record.
    """
    name = path.name
    if path.suffix.lower() not in YAML_SUFFIXES:
        document = read_csv_records(path, model, errors=errors, comments=True)
        return SheetDocument(file=name, records=document.records)
    try:
        text = read_text(path)
    except UnreadableFileError as exc:
        errors.append(RowError(name, exc.line, "", exc.message))
        return SheetDocument(file=name)
    return _read_yaml(name, text, list_key, columns(model), meta_keys, errors)


# ------------------------------------------------------------------------------------------------ YAML


def _read_yaml(
    name: str,
    text: str,
    list_key: str,
    allowed: tuple[str, ...],
    meta_keys: tuple[str, ...],
    errors: list[RowError],
) -> SheetDocument:
    document = SheetDocument(file=name)
    try:
        root = compose_yaml(text)
    except YamlDocumentError as exc:
        errors.append(RowError(name, exc.line, "", exc.message))
        return document
    if root is None:
        errors.append(RowError(name, 1, "", f"empty document (expected a list under {list_key!r})"))
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
                errors.append(RowError(name, line, key, f"unknown key (expected {expected})"))
        if items is None:
            errors.append(RowError(name, 1, list_key, f"missing: the list of records under {list_key!r}"))
            return document
    if not isinstance(items, yaml.SequenceNode):
        line = items.start_mark.line + 1 if items is not None else 1
        errors.append(RowError(name, line, list_key, "expected a list of records"))
        return document
    for item in items.value:
        line = item.start_mark.line + 1
        row = RawRecord(name, line, {}, errors)
        if not isinstance(item, yaml.MappingNode):
            row.error("", "expected a mapping of column: value")
            continue
        own, malformed = _yaml_mapping(name, item, allowed, errors)
        values = {**defaults, **own}
        row.values = {key: text for key, (text, _) in values.items()}
        row.value_lines = {key: value_line for key, (_, value_line) in values.items()}
        row.reported |= malformed
        document.records.append(row)
    return document


def _yaml_mapping(
    name: str, node: yaml.Node, allowed: tuple[str, ...], errors: list[RowError]
) -> tuple[dict[str, tuple[str, int]], set[str]]:
    """A mapping of scalar values as {column: (text, line)}, and the columns given in a wrong shape."""
    line = node.start_mark.line + 1
    if not isinstance(node, yaml.MappingNode):
        errors.append(RowError(name, line, "", "expected a mapping of column: value"))
        return {}, set()
    values: dict[str, tuple[str, int]] = {}
    malformed: set[str] = set()
    for key_node, value_node in node.value:
        key = _scalar_text(key_node)
        value_line = value_node.start_mark.line + 1
        if key not in allowed:
            errors.append(RowError(name, value_line, key, f"unknown column (expected {', '.join(allowed)})"))
            continue
        if key in values:
            errors.append(RowError(name, value_line, key, "given twice"))
            continue
        if not isinstance(value_node, yaml.ScalarNode):
            errors.append(RowError(name, value_line, key, "expected a single value, not a list or mapping"))
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
