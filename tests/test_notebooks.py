"""Every notebook in notebooks/ runs, on small parameters, in a fresh kernel (jupytext + nbclient).

The notebooks are jupytext percent-format ``.py`` files; their parameters cell reads
``GPUPLAN_NOTEBOOK_SIZE`` (``small`` here). A cell that raises fails the test with the cell's error.
Outputs are not kept (``.ipynb`` files are not in git).
"""

from __future__ import annotations

from pathlib import Path

import jupytext
import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9]*.py"))
CELL_TIMEOUT_S = 300


def test_there_are_four_notebooks() -> None:
    assert [path.name for path in NOTEBOOKS] == [
        "01_offers.py",
        "02_what_if.py",
        "03_pareto.py",
        "04_commitments.py",
    ]


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_notebook_runs(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GPUPLAN_NOTEBOOK_SIZE", "small")
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel's inline backend renders with Agg
    notebook = jupytext.read(path)
    assert any("parameters" in cell.metadata.get("tags", []) for cell in notebook.cells)
    client = NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()
    images = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if "image/png" in output.get("data", {})
    ]
    assert images, f"{path.name} shows no plot"
    nbformat.validate(notebook)
