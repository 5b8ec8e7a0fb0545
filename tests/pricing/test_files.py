"""pricing.files: the one reader of user files, its CSV records and its YAML documents."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pricing.files import (
    MAX_CSV_FIELD,
    MAX_FILE_BYTES,
    MAX_YAML_NODES,
    UnreadableFileError,
    YamlDocumentError,
    csv_records,
    load_yaml,
    read_text,
)


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_utf8_text_is_read_and_a_byte_order_mark_dropped(tmp_path: Path) -> None:
    assert read_text(_write(tmp_path, "a.csv", "\ufeffcity\nZürich\n".encode())) == "city\nZürich\n"


def test_latin1_names_the_byte_its_offset_and_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "fleet.yaml", "models: []\nsources:\n  - name: Zürich\n".encode("latin-1"))
    with pytest.raises(UnreadableFileError) as caught:
        read_text(path)
    offset = b"models: []\nsources:\n  - name: Z".__len__()
    assert caught.value.line == 3
    assert str(caught.value) == (
        f"{path}: not UTF-8 text: byte 0xfc at offset {offset} (line 3) cannot be decoded; save the file as "
        "UTF-8"
    )


def test_binary_content_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UnreadableFileError, match=r"not UTF-8 text: byte 0x89 at offset 0 \(line 1\)"):
        read_text(_write(tmp_path, "image.yaml", b"\x89PNG\r\n\x1a\n\x00\x00"))
    with pytest.raises(UnreadableFileError, match=r"a NUL byte at offset 5 \(line 2\): binary content"):
        read_text(_write(tmp_path, "nul.yaml", b"a: 1\n\x00"))


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
def test_devices_are_refused_before_a_byte_is_read(device: str) -> None:
    with pytest.raises(UnreadableFileError, match="not a regular file"):
        read_text(device)


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)  # nothing writes to it: a blocking open would hang the test
    with pytest.raises(UnreadableFileError, match="not a regular file"):
        read_text(fifo)


def test_directories_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(UnreadableFileError, match="is a directory"):
        read_text(tmp_path)
    with pytest.raises(UnreadableFileError, match="no such file"):
        read_text(tmp_path / "missing.yaml")


def test_a_file_over_the_limit_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "huge.csv"
    with path.open("wb") as handle:
        handle.truncate(MAX_FILE_BYTES + 1)  # sparse: costs no disk
    with pytest.raises(UnreadableFileError, match=r"larger than 64\.0 MiB, the limit for an input file"):
        read_text(path)
    assert read_text(_write(tmp_path, "small.csv", b"x" * 10), limit=10) == "x" * 10
    with pytest.raises(UnreadableFileError, match="larger than 10 bytes"):
        read_text(_write(tmp_path, "eleven.csv", b"x" * 11), limit=10)


# ------------------------------------------------------------------------------------------------- CSV


def test_csv_records_give_the_line_each_record_starts_on() -> None:
    text = 'a,b\n\n1,"two\nlines"\n3,4\n# not a comment here\n'
    document = csv_records(text)
    assert document.header == ["a", "b"] and document.header_line == 1
    assert [(r.line, r.values) for r in document.records] == [
        (3, {"a": "1", "b": "two\nlines"}),
        (5, {"a": "3", "b": "4"}),
        (6, {"a": "# not a comment here"}),
    ]
    assert document.records[2].field_count == 1


def test_comment_lines_are_skipped_where_the_format_allows_them() -> None:
    text = "# a sheet\na,b\n# negotiated\n1,2\n1,2,3\n"
    document = csv_records(text, comments=True)
    assert document.header_line == 2
    assert [(r.line, r.field_count) for r in document.records] == [(4, 2), (5, 3)]


def test_a_field_over_the_limit_stops_the_reading_with_its_line() -> None:
    text = "a,b\n1,2\n3," + "x" * (MAX_CSV_FIELD + 1) + "\n5,6\n"
    document = csv_records(text)
    assert [r.line for r in document.records] == [2]
    assert document.problem is not None and document.problem.line == 3
    assert document.problem.message.startswith("a field is longer than 131,072 characters")


# ------------------------------------------------------------------------------------------------ YAML


def test_yaml_anchors_are_fine_and_a_bomb_is_refused() -> None:
    assert load_yaml("base: &b {x: 1}\nother: *b\n") == {"base": {"x": 1}, "other": {"x": 1}}
    bomb = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    for level, previous in zip("bcdefghi", "abcdefgh", strict=True):
        bomb.append(f"{level}: &{level} [{', '.join([f'*{previous}'] * 9)}]")
    with pytest.raises(YamlDocumentError) as caught:
        load_yaml("\n".join(bomb))
    assert f"expands to more than {MAX_YAML_NODES:,} values" in caught.value.message


def test_yaml_errors_have_their_place_and_depth_is_bounded() -> None:
    with pytest.raises(YamlDocumentError) as caught:
        load_yaml("models: [\n  {name: a,\n")
    assert (caught.value.line, caught.value.where) == (3, "line 3, column 1: ")
    with pytest.raises(YamlDocumentError, match="nested too deeply"):
        load_yaml("[" * 5000 + "]" * 5000)
    with pytest.raises(YamlDocumentError, match="recursive alias"):
        load_yaml("a: &a [*a]")
