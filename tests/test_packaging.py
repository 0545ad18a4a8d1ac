"""The promises around the code: stubs match, Cython can cimport mmio, README and CI agree."""

import os
import pathlib
import re
import subprocess
import sys
import textwrap

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


def test_readme_opens_with_the_two_commands_and_ci_runs_the_second():
    demo, tests = _readme_commands()
    assert "pip install" in demo and demo.endswith("mmio demo")
    assert "pytest" in tests
    ci = (ROOT / ".ci" / "run").read_text()
    assert "Run the whole test suite" in ci  # .ci/run takes the command from the README line


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


@pytest.mark.parametrize("argv, status", [(["demo", "--size", "0"], 2), (["demo", "--dir", "/nonexistent/dir"], 1), (["nonsense"], 2), ([], 2)])
def test_cli_exit_status(argv, status):
    proc = subprocess.run([sys.executable, "-m", "mmio", *argv], capture_output=True, text=True)
    assert proc.returncode == status
    assert proc.stderr


def test_readme_tour_runs(tmp_path, monkeypatch):
    source = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", source, re.S)
    assert len(blocks) >= 2
    monkeypatch.chdir(tmp_path)
    for code in blocks:
        exec(compile(code, "README.md", "exec"), {})
