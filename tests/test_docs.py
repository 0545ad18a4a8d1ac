"""The documentation: built warning-free by Sphinx, and every Python example in it runs."""

import contextlib
import doctest
import io
import pathlib
import re
import subprocess
import sys

import pytest

import mmio

DOCS = pathlib.Path(__file__).resolve().parent.parent / "docs"
PAGES = sorted(p for p in DOCS.glob("*.md") if "```python" in p.read_text())


def test_sphinx_builds_without_warnings(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
                           str(DOCS), str(tmp_path / "html")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    api = (tmp_path / "html" / "api.html").read_text()
    for name in mmio.__all__:
        if name != "PAGE_SIZE":
            assert f"mmio.{name}" in api, f"{name} has no reference entry"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_examples_in_the_docs_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for block in re.findall(r"```python\n(.*?)```", page.read_text(), re.S):
        with contextlib.redirect_stdout(io.StringIO()):
            exec(compile(block, str(page), "exec"), namespace)


def _modules():
    """Every module of the package, compiled or not, except the command-line entry point."""
    import pkgutil
    return sorted(m.name for m in pkgutil.walk_packages(mmio.__path__, "mmio.") if m.name != "mmio.__main__")


@pytest.mark.parametrize("module", _modules())
def test_docstring_examples_run(module, tmp_path, monkeypatch):
    import importlib
    monkeypatch.chdir(tmp_path)
    target = importlib.import_module(module)
    globs = {"mmio": mmio, "np": __import__("numpy")}
    result = doctest.testmod(target, extraglobs=globs, optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.failed == 0


def test_the_public_modules_have_examples_to_run():
    import importlib
    counts = {name: doctest.testmod(importlib.import_module(name), extraglobs={"mmio": mmio, "np": __import__("numpy")},
                                    optionflags=doctest.ELLIPSIS, verbose=False, report=False).attempted
              for name in ("mmio._mapping", "mmio._open", "mmio._buffers", "mmio._residency", "mmio.pagecache",
                           "mmio.arrays", "mmio._flags")}
    assert all(counts.values()), counts


def test_every_public_name_has_an_example():
    missing = [name for name in mmio.__all__ if name != "PAGE_SIZE"
               and "Examples" not in (getattr(mmio, name).__doc__ or "")]
    assert not missing, f"public names without an Examples section: {missing}"
