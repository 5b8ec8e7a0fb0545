"""One reader for every file a user hands gpuplan: scenario and fleet documents, price sheets, discount files,
offers files and catalog directories.

``read_text(path)`` is the only way such a file is read, so every one of them behaves the same:

* only a regular file is read: a directory, a device (``/dev/zero``), a FIFO or a socket is refused
  before a byte is read (a FIFO is opened without blocking);
* at most ``MAX_FILE_BYTES`` (64 MiB) are read: a larger file is refused, never read to its end;
* the text must be UTF-8 (a leading byte-order mark is dropped); otherwise the error names the byte
  offset and the line of the first byte that is not, and a NUL byte is refused as binary content.

``csv_records(text, file=...)`` reads CSV text with ``csv.DictReader``: it skips blank lines (and comment
lines starting with ``#`` where a format allows them), gives each record with the line it starts on, and
turns the csv module's own errors (a field over ``MAX_CSV_FIELD`` characters, a stray NUL) into a
``FileProblem`` on the line where reading stopped.

``load_yaml(text, source=...)`` parses YAML safely (``yaml.SafeLoader``: no Python objects) and refuses a
document whose aliases expand it beyond ``MAX_YAML_NODES`` nodes (a "billion laughs" bomb), before anything
walks the expanded tree.

Problems are ``UnreadableFileError`` (the file cannot be read as text at all) or ``FileProblem`` values
(one place in a readable file); the callers turn them into their own errors (``CatalogError``,
``PriceSheetError``, ``SpecError``, ...), so that a user sees them in the same ``file:line: message`` shape
as every other problem of that file.
"""

from __future__ import annotations

import csv
import io
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

MAX_FILE_BYTES = 64 * 1024 * 1024
"""64 MiB: the largest input file read. The shipped catalog's largest file is about 0.5 MiB."""

MAX_CSV_FIELD = 128 * 1024
"""128 KiB: the longest CSV field (the csv module's default limit), in characters."""

MAX_YAML_NODES = 1_000_000
"""The most nodes a YAML document may have once its aliases are expanded."""

_BOM = "\ufeff"


class UnreadableFileError(ValueError):
    """A file that cannot be read as text: missing, not a regular file, too large, not UTF-8 or binary."""

    def __init__(self, path: Path | str, message: str, *, line: int = 0) -> None:
        self.path = str(path)
        self.message = message
        self.line = line
        super().__init__(f"{self.path}: {message}")


@dataclass(frozen=True)
class FileProblem:
    """One problem at one place of a file that could be read: its 1-based line (0: the whole file)."""

    line: int
    message: str


def _describe_size(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MiB" if size >= 1024 * 1024 else f"{size:,} bytes"


def read_text(path: Path | str, *, limit: int = MAX_FILE_BYTES) -> str:
    """The UTF-8 text of a regular file of at most ``limit`` bytes; UnreadableFileError says why not."""
    path = Path(path)
    try:
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise UnreadableFileError(path, "no such file") from None
    except IsADirectoryError:
        raise UnreadableFileError(path, "is a directory, not a file") from None
    except OSError as exc:
        raise UnreadableFileError(path, f"cannot be read: {exc.strerror or exc}") from None
    try:
        status = os.fstat(descriptor)
        if stat.S_ISDIR(status.st_mode):
            raise UnreadableFileError(path, "is a directory, not a file")
        if not stat.S_ISREG(status.st_mode):
            raise UnreadableFileError(path, "is not a regular file (a device, FIFO or socket): refused")
        if status.st_size > limit:
            raise UnreadableFileError(
                path,
                f"{_describe_size(status.st_size)}, larger than {_describe_size(limit)}, the limit for an "
                "input file",
            )
    except UnreadableFileError:
        os.close(descriptor)
        raise
    with os.fdopen(descriptor, "rb") as handle:
        try:
            data = handle.read(limit + 1)
        except OSError as exc:
            raise UnreadableFileError(path, f"cannot be read: {exc.strerror or exc}") from None
    if len(data) > limit:  # it grew while being read
        raise UnreadableFileError(path, f"larger than {_describe_size(limit)}, the limit for an input file")
    return decode_text(data, path)


def decode_text(data: bytes, path: Path | str) -> str:
    """``data`` as UTF-8 text (without a leading byte-order mark), or UnreadableFileError naming the byte."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise UnreadableFileError(
            path,
            f"not UTF-8 text: byte 0x{data[exc.start]:02x} at offset {exc.start} (line {line}) cannot be "
            "decoded; save the file as UTF-8",
            line=line,
        ) from None
    nul = text.find("\0")
    if nul >= 0:
        offset = len(text[:nul].encode("utf-8"))
        line = text.count("\n", 0, nul) + 1
        raise UnreadableFileError(
            path, f"a NUL byte at offset {offset} (line {line}): binary content, not text", line=line
        )
    return text.removeprefix(_BOM)


# ------------------------------------------------------------------------------------------------- CSV


@dataclass
class CsvRecord:
    """One CSV record: its starting line and its values by column (as written, not stripped)."""

    line: int
    values: dict[str, str]
    field_count: int
    """How many fields the record has (differs from the header's count in a malformed record)."""


@dataclass
class CsvDocument:
    header: list[str]
    """Column names as written in the header, stripped; empty when the file has no header."""
    header_line: int
    records: list[CsvRecord]
    problem: FileProblem | None = None
    """Why reading stopped before the end (the csv module refused a record), if it did."""


_EXTRA = "\0extra"


def _skipped(record: list[str], comments: bool) -> bool:
    if not any(cell.strip() for cell in record):
        return True
    return comments and record[0].lstrip().startswith("#")


def csv_records(text: str, *, comments: bool = False) -> CsvDocument:
    """The header and every record of CSV text (blank lines, and ``#`` lines if ``comments``, skipped).

    A record with too few or too many fields is returned with its ``field_count`` (its missing values
    are absent from ``values``); the caller reports it. The csv module's errors stop the reading; the
    records before stay and ``problem`` says what and where.
    """
    handle = io.StringIO(text, newline="")
    header_reader = csv.reader(handle)
    header: list[str] = []
    header_line = 0
    try:
        for record in header_reader:
            if not _skipped(record, comments):
                header = [cell.strip() for cell in record]
                header_line = header_reader.line_num
                break
    except csv.Error as exc:
        return CsvDocument([], 0, [], _csv_problem(exc, header_reader.line_num + 1))
    document = CsvDocument(header, header_line, [])
    if not header:
        return document
    reader = csv.DictReader(handle, fieldnames=header, restkey=_EXTRA)
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            document.problem = _csv_problem(exc, header_line + reader.line_num + 1)
            break
        end = header_line + reader.line_num
        extra = row.pop(_EXTRA, None) or []
        values = {column: value for column, value in row.items() if value is not None}
        cells = [*values.values(), *extra]
        if _skipped(cells, comments):
            continue
        start = end - sum(value.count("\n") for value in cells)
        document.records.append(CsvRecord(start, values, len(values) + len(extra)))
    return document


def _csv_problem(exc: csv.Error, line: int) -> FileProblem:
    # ``line``: the csv module counts a line once it has read it whole, so the refused one is the next.
    message = str(exc)
    if "field larger than field limit" in message:
        return FileProblem(
            line, f"a field is longer than {MAX_CSV_FIELD:,} characters, the limit: is this the right file?"
        )
    return FileProblem(line, f"not valid CSV: {message}")


# ------------------------------------------------------------------------------------------------ YAML


class YamlDocumentError(ValueError):
    """YAML text that is not valid YAML, or that expands beyond ``MAX_YAML_NODES`` nodes."""

    def __init__(self, message: str, *, line: int = 0, column: int = 0) -> None:
        self.message = message
        self.line = line
        self.column = column
        super().__init__(message)

    @property
    def where(self) -> str:
        """``line 3, column 5: `` (empty when unknown)."""
        if not self.line:
            return ""
        return f"line {self.line}, column {self.column}: " if self.column else f"line {self.line}: "


def compose_yaml(text: str) -> yaml.Node | None:
    """The node graph of one YAML document (None when empty), after the expansion check."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except RecursionError:
        raise YamlDocumentError("not valid YAML here: nested too deeply") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        if mark is None:
            raise YamlDocumentError(f"not valid YAML: {problem}") from None
        raise YamlDocumentError(
            f"not valid YAML: {problem}", line=mark.line + 1, column=mark.column + 1
        ) from None
    if node is not None:
        try:
            _check_expansion(node)
        except RecursionError:
            raise YamlDocumentError("not valid YAML here: nested too deeply") from None
    return node


def load_yaml(text: str) -> Any:
    """One YAML document as Python data (safe types only), refusing alias bombs."""
    node = compose_yaml(text)
    if node is None:
        return None
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_document(node)
    except RecursionError:
        raise YamlDocumentError("not valid YAML here: nested too deeply") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (0, 0)
        raise YamlDocumentError(f"not valid YAML: {problem}", line=line, column=column) from None
    finally:
        loader.dispose()


def _check_expansion(root: yaml.Node) -> None:
    """Refuse a node graph whose expanded tree (aliases repeated) has more than MAX_YAML_NODES nodes.

    The count is computed once per distinct node (memoised), so a bomb costs as little to measure as to
    compose; a cycle (a recursive alias) is refused too.
    """
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in open_nodes:
            raise YamlDocumentError("not valid YAML here: a recursive alias (a node that contains itself)")
        open_nodes.add(key)
        total = 1
        if isinstance(node, yaml.SequenceNode):
            for child in node.value:
                total += size(child)
                if total > MAX_YAML_NODES:
                    break
        elif isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                total += size(key_node) + size(value_node)
                if total > MAX_YAML_NODES:
                    break
        open_nodes.discard(key)
        sizes[key] = total
        return total

    if size(root) > MAX_YAML_NODES:
        mark = root.start_mark
        raise YamlDocumentError(
            f"the document expands to more than {MAX_YAML_NODES:,} values through its aliases "
            "(&anchor / *alias): refused",
            line=mark.line + 1 if mark is not None else 0,
        )
