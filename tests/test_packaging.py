"""The promises around the code: stubs match, Cython can cimport mmio, README and CI agree."""

import importlib.machinery
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tarfile
import textwrap
import zipfile

import numpy as np
import pytest

import mmio

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_public_names_match_the_contract():
    expected = {"open", "anonymous", "Mapping", "Advice", "Prot", "PAGE_SIZE",
                "MappingFaultError", "Residency"}
    assert expected <= set(mmio.__all__)
    for name in mmio.__all__:
        assert getattr(mmio, name) is not None
        doc = getattr(getattr(mmio, name), "__doc__", None)
        assert name == "PAGE_SIZE" or doc and len(doc) > 20, f"{name} lacks a docstring"


def test_compiled_signatures_are_embedded():
    assert mmio.open.__doc__.startswith("open(target, mode='r', *, offset=0")
    assert mmio.Mapping.array.__doc__.startswith("Mapping.array(self, dtype='u1'")


def test_stubs_match_the_compiled_modules():
    pytest.importorskip("mypy")
    proc = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "mmio", "--concise",
         "--mypy-config-file", str(ROOT / "pyproject.toml"),
         "--allowlist", str(ROOT / "tests" / "stubtest-allowlist.txt")],
        capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_cython_code_can_cimport_mmio(tmp_path):
    (tmp_path / "consumer.pyx").write_text(textwrap.dedent("""
        # cython: language_level=3
        cimport mmio
        from mmio cimport Mapping

        def checksum(Mapping m):
            cdef Py_ssize_t i
            cdef unsigned long long total = 0
            m.acquire()
            try:
                with nogil:
                    for i in range(m.length):
                        total += <unsigned char>m.data[i]
            finally:
                m.release()
            return total

        def address_and_size(mmio.Mapping m):
            return <size_t>m.data, m.length

        def hold(Mapping m):
            m.acquire()

        def drop(Mapping m):
            m.release()
    """))
    include = os.path.dirname(os.path.dirname(mmio.__file__))
    build = textwrap.dedent(f"""
        from setuptools import setup, Extension
        from Cython.Build import cythonize
        setup(ext_modules=cythonize([Extension("consumer", ["consumer.pyx"])],
                                    include_path=[{include!r}], quiet=True),
              script_args=["build_ext", "--inplace", "-q"])
    """)
    proc = subprocess.run([sys.executable, "-c", build], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    sys.path.insert(0, str(tmp_path))
    try:
        import consumer
    finally:
        sys.path.remove(str(tmp_path))
    with mmio.anonymous(4096) as m:
        m[:3] = b"\x01\x02\x03"
        assert consumer.checksum(m) == 6
        assert consumer.address_and_size(m) == (m.address, 4096)
        consumer.hold(m)
        with pytest.raises(BufferError):
            m.close()
        consumer.drop(m)
    with pytest.raises(ValueError, match="closed"):
        consumer.checksum(m)


def _readme_commands():
    lines = (ROOT / "README.md").read_text().splitlines()[:12]
    return [m.group(1) for line in lines if (m := re.search(r"`([^`]*&&[^`]*)`", line))]


def test_readme_opens_with_the_two_commands_and_ci_runs_both():
    demo, tests = _readme_commands()
    assert demo == "python3 -m pip install . && mmio demo"  # a plain install: an editable one hides missing files
    assert "pytest" in tests
    ci = (ROOT / ".ci" / "run").read_text()  # .ci/run takes both commands from their README lines
    assert "Install and run the demo" in ci and "Run the whole test suite" in ci


def test_readme_development_commands_run_as_written():
    """Every line of the README's shell blocks, run from the root after the test command's install."""
    blocks = re.findall(r"```sh\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    lines = [line for block in blocks for line in block.splitlines() if line.strip()]
    assert any("sphinx" in line for line in lines) and any("benchmarks" in line for line in lines)
    env = {**os.environ, "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}"}
    for line in lines:
        proc = subprocess.run(["bash", "-c", line], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, f"{line}\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}"


def test_cli_demo_runs_and_cleans_up(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "mmio", "demo", "--size", "8", "--dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for needle in ("map + array (mmio)", "resident before scan", "scan 1 (cold", "resident after scan",
                   "100.0%", "GB/s", "removed"):
        assert needle in out, out
    assert "[" + "*" * 64 + "]" in out
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("argv, status", [
    (["demo", "--size", "0"], 2),
    (["demo", "--size", str(10**12)], 2),  # more than the disk and the RAM: refused before writing
    (["demo", "--dir", "/nonexistent/dir"], 1),
    (["nonsense"], 2),
    ([], 2),
])
def test_cli_exit_status(argv, status, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "mmio", *argv], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == status
    assert proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_demo_refuses_a_size_the_disk_or_the_ram_cannot_hold(tmp_path, monkeypatch, capsys):
    from mmio import cli, demo

    class Filesystem:  # 100 MiB free, whatever the machine's disk holds right now
        f_bavail, f_frsize = 100 << 8, 4096

    monkeypatch.setattr(demo.os, "statvfs", lambda path: Filesystem)
    assert cli.main(["demo", "--size", "101", "--dir", str(tmp_path)]) == 2
    assert f"--size 101 MiB does not fit: {tmp_path} has 100 MiB free" in capsys.readouterr().err
    ram_mib = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") >> 20
    Filesystem.f_bavail = 1 << 40
    with pytest.raises(ValueError, match=f"more than this machine's {ram_mib} MiB of RAM"):
        demo.check_size(ram_mib + 1, str(tmp_path))
    demo.check_size(100, str(tmp_path))  # what fits is accepted
    assert list(tmp_path.iterdir()) == []


def test_readme_tour_runs(tmp_path, monkeypatch):
    source = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", source, re.S)
    assert len(blocks) >= 2
    monkeypatch.chdir(tmp_path)
    for code in blocks:
        exec(compile(code, "README.md", "exec"), {})


# ---- the distributions: what `pip install .` and the sdist give a user -------------------------------------

def _project_files() -> list[str]:
    """The files of the project a fresh clone has (tracked, plus new ones not yet committed or ignored)."""
    proc = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
                          cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"not a git checkout: {proc.stderr.strip()}")
    return sorted(f for f in set(proc.stdout.split("\0")) if f and (ROOT / f).is_file())


def _compiled_modules() -> list[str]:
    """The extension modules setup.py builds (as module paths, e.g. ``mmio/_mapping``)."""
    source = (ROOT / "setup.py").read_text()
    names = re.search(r"MODULES = \[(.*?)\]", source, re.S).group(1)
    return [f"mmio/{name}" for name in re.findall(r'"(\w+)"', names)]


@pytest.fixture(scope="module")
def distributions(tmp_path_factory):
    """An sdist and the wheel built from it (as ``python -m build`` does), from a copy of the clone's files."""
    tmp = tmp_path_factory.mktemp("dist")
    tree = tmp / "tree"
    for name in _project_files():
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, tree / name)
    proc = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(tmp / "out"), str(tree)],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (sdist,) = (tmp / "out").glob("*.tar.gz")
    (wheel,) = (tmp / "out").glob("*.whl")
    return sdist, wheel


def test_sdist_carries_what_a_build_needs(distributions):
    sdist, _ = distributions
    with tarfile.open(sdist) as tar:
        members = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
    needed = {f for f in _project_files() if f.startswith(("mmio/", "tests/", "benchmarks/", "docs/"))}
    needed |= {"pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "LICENSE"}
    assert needed <= members, f"missing from the sdist: {sorted(needed - members)}"
    generated = {m for m in members if re.fullmatch(r"mmio/[^/]+\.(c|so)", m)}
    assert not generated, f"build output in the sdist: {sorted(generated)}"


def test_wheel_ships_every_module_and_nothing_generated(distributions):
    _, wheel = distributions
    with zipfile.ZipFile(wheel) as zf:
        shipped = {n for n in zf.namelist() if n.startswith("mmio/")}
        metadata = zf.read(next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))).decode()
        entry_points = zf.read(next(n for n in zf.namelist() if n.endswith(".dist-info/entry_points.txt"))).decode()
    tracked = [f for f in _project_files() if f.startswith("mmio/")]
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    sources = {f for f in tracked if f.endswith((".py", ".pyx", ".pxd", ".pyi", ".h", ".c")) or f == "mmio/py.typed"}
    compiled = {module + suffix for module in _compiled_modules()}
    pyx = {f[: -len(".pyx")] for f in tracked if f.endswith(".pyx")}
    assert pyx == set(_compiled_modules()), "every .pyx is compiled by setup.py, and only those"
    assert shipped == sources | compiled, (f"missing: {sorted(sources | compiled - shipped)}; "
                                           f"unexpected: {sorted(shipped - sources - compiled)}")
    assert "License-Expression: MIT" in metadata
    assert re.search(r"^mmio = mmio\.cli:main$", entry_points, re.M)


def _run_installed(target, code_or_args, cwd):
    """Run Python on the installed wheel only: no site (so no editable-install finder), numpy from this env."""
    numpy_site = os.path.dirname(os.path.dirname(np.__file__))
    env = {**os.environ, "PYTHONPATH": f"{target}:{numpy_site}"}
    args = ["-c", code_or_args] if isinstance(code_or_args, str) else code_or_args
    return subprocess.run([sys.executable, "-S", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


def test_installed_wheel_imports_every_module_and_runs_the_demo(distributions, tmp_path):
    _, wheel = distributions
    target = tmp_path / "site"
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--quiet",
                           "--target", str(target), str(wheel)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert (target / "bin" / "mmio").exists()
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    proc = _run_installed(target, textwrap.dedent(f"""
        import importlib, pkgutil, mmio
        names = [m.name for m in pkgutil.walk_packages(mmio.__path__, "mmio.") if m.name != "mmio.__main__"]
        for name in ["mmio", *names]:
            module = importlib.import_module(name)
            assert module.__file__.startswith({str(target)!r}), (name, module.__file__)
            print(name)
        for name in mmio.__all__:
            getattr(mmio, name)
    """), cwd=outside)
    assert proc.returncode == 0, proc.stderr
    imported = set(proc.stdout.split())
    expected = {f[:-3].replace("/", ".").removesuffix(".__init__") for f in _project_files()
                if f.startswith("mmio/") and f.endswith(".py") and not f.endswith("__main__.py")}
    expected |= {m.replace("/", ".") for m in _compiled_modules()}
    assert imported == expected
    proc = _run_installed(target, ["-m", "mmio", "demo", "--size", "2", "--dir", str(outside)], cwd=outside)
    assert proc.returncode == 0, proc.stderr
    assert "100.0%" in proc.stdout and list(outside.iterdir()) == []


def test_unbuilt_checkout_says_how_to_build_it(tmp_path):
    for name in _project_files():
        if name.startswith("mmio/") or name == "setup.py":
            (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, tmp_path / name)
    proc = subprocess.run([sys.executable, "-S", "-c", "import mmio"], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: mmio is being imported from its source tree"), proc.stderr
    assert "pip install -e ." in last and "mmio._mapping is missing" in last


def test_build_requires_a_setuptools_that_reads_the_license_expression():
    """`license = "MIT"` (PEP 639) is an error for setuptools < 77, which a --no-build-isolation build may have."""
    text = (ROOT / "pyproject.toml").read_text()  # (tomllib is 3.11+)
    assert re.search(r'^license = "MIT"$', text, re.M)
    build_system = re.search(r"^\[build-system\]\nrequires = \[(.*?)\]", text, re.M).group(1)
    minimum = re.search(r'"setuptools>=(\d+)', build_system)
    assert minimum and int(minimum.group(1)) >= 77, build_system


def test_the_value_module_does_not_hide_the_residency_function():
    import mmio.pagecache
    assert callable(mmio.residency) and mmio.residency is mmio.pagecache.residency
    assert mmio.pagecache.ResidencyTable.__module__ == "mmio.pagecache"
