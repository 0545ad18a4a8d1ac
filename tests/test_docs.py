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


# The modules behind the public API: each must keep examples to run, not only run the ones it has.
PUBLIC = {"mmio._mapping", "mmio._open", "mmio._buffers", "mmio._residency", "mmio._process", "mmio.pagecache",
          "mmio.arrays", "mmio.gather", "mmio._flags", "mmio.procmaps", "mmio.watching"}


def _runnable(examples):
    return [(e.source, e.want) for e in examples if not e.options.get(doctest.SKIP)]


def _examples_in_the_source(module) -> list:
    """The examples of a module's docstrings, parsed from its source file (.py, or the .pyx of a compiled
    module): what must run."""
    path = pathlib.Path(module.__file__)
    if path.suffix == ".so":
        path = path.with_name(path.name.split(".")[0] + ".pyx")
    examples = doctest.DocTestParser().get_examples(path.read_text(), str(path))
    return [source for source, _ in _runnable(examples)]  # (a docstring's last "want" runs on into the code)


def _docstring_tests(module) -> list:
    """The module's doctests, each docstring once: Cython lists a method's docstring twice (the method and
    ``__test__``), and running it twice would run its side effects twice."""
    found = doctest.DocTestFinder().find(module)
    tests = [t for t in found if ".__test__." not in t.name and t.examples]
    seen = {tuple((e.source, e.want) for e in t.examples) for t in tests}
    return tests + [t for t in found if ".__test__." in t.name
                    and tuple((e.source, e.want) for e in t.examples) not in seen]


@pytest.mark.parametrize("module", _modules())
def test_docstring_examples_run(module, tmp_path, monkeypatch):
    import importlib
    monkeypatch.chdir(tmp_path)
    target = importlib.import_module(module)
    expected = _examples_in_the_source(target)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    report, collected = io.StringIO(), []
    for test in _docstring_tests(target):
        test.globs.update(mmio=mmio, np=__import__("numpy"))
        runner.run(test, out=report.write)
        collected += [source for source, _ in _runnable(test.examples)]
    result = runner.summarize(verbose=False)
    assert sorted(collected) == sorted(expected), "docstring examples in the source that doctest does not find"
    assert result.attempted == len(expected) and (result.attempted > 0 or module not in PUBLIC)
    assert result.failed == 0, report.getvalue()


def test_the_public_modules_are_modules():
    assert PUBLIC <= set(_modules())


def test_every_public_name_has_an_example():
    missing = [name for name in mmio.__all__ if name != "PAGE_SIZE"
               and "Examples" not in (getattr(mmio, name).__doc__ or "")]
    assert not missing, f"public names without an Examples section: {missing}"
