"""The example notebook in docs/ runs top to bottom and draws its pictures (so it stays true)."""

import pathlib

import nbformat
from nbclient import NotebookClient

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_residency_notebook_executes():
    notebook = nbformat.read(ROOT / "docs" / "residency.ipynb", as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}).execute()
    html = [out["data"]["text/html"] for cell in notebook.cells if cell.cell_type == "code"
            for out in cell.get("outputs", []) if "text/html" in out.get("data", {})]
    assert len(html) == 6 and all("<svg" in h for h in html)
    captions = [h.split("</svg>")[-1] for h in html[:4]]
    assert "0.0% of 64.0 MiB" in captions[0] and "100.0% of 64.0 MiB" in captions[2]
    table, heatmap = html[4], html[5]
    assert "mmio-residency-table" in table and "part-0.f8" in table and "total (4 files)" in table
    assert "sample.f8" not in table.split("part-")[0].split("<tbody>")[1]  # most resident first: sample.f8 is cold
    assert 'class="mmio-watch"' in heatmap and "sample.f8" in heatmap
