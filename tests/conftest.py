import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import mmio


@pytest.fixture
def public_dir():
    """A directory every user may enter (pytest's tmp_path is private to root)."""
    import shutil
    import tempfile
    path = tempfile.mkdtemp(prefix="mmio-test-")
    os.chmod(path, 0o755)
    yield __import__("pathlib").Path(path)
    shutil.rmtree(path)


@pytest.fixture
def data_file(tmp_path):
    """A 3-page-and-a-bit file whose byte i is i % 251 (a pattern no page repeats)."""
    path = tmp_path / "data.bin"
    payload = (np.arange(3 * mmio.PAGE_SIZE + 123) % 251).astype(np.uint8)
    payload.tofile(path)
    return path, payload.tobytes()


def vm_flags(address):
    """The VmFlags of the /proc/self/smaps entry that contains ``address``."""
    with open("/proc/self/smaps") as f:
        inside = False
        for line in f:
            head = line.split()[0]
            if "-" in head and not head.endswith(":"):
                lo, hi = (int(x, 16) for x in head.split("-"))
                inside = lo <= address < hi
            elif inside and head == "VmFlags:":
                return set(line.split()[1:])
    raise LookupError(f"no mapping contains {address:#x}")


def evict(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fdatasync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def run_python(code, *, setup="", check=True, timeout=120):
    """Run ``setup`` then ``code`` (dedented) in a fresh interpreter; return the CompletedProcess.

    The child's ``TMPDIR`` is a directory of its own, removed afterwards, so what its ``tempfile`` calls
    create does not pile up in /tmp.
    """
    import tempfile
    source = textwrap.dedent(setup) + textwrap.dedent(code)
    with tempfile.TemporaryDirectory(prefix="mmio-child-") as tmp:
        os.chmod(tmp, 0o755)  # children that drop to another user still reach their files
        proc = subprocess.run([sys.executable, "-c", source], capture_output=True, text=True,
                              timeout=timeout, env={**os.environ, "TMPDIR": tmp})
    if check and proc.returncode != 0:
        raise AssertionError(f"subprocess failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def sparse_file(path, pages=256, pattern=(0, 3, 4, 5, 17, 100, 101, 200, 255)):
    """A file with exactly the given pages cached: written, evicted, then read with no read-ahead."""
    path.write_bytes(os.urandom(pages * mmio.PAGE_SIZE))
    evict(path)
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
        for page in pattern:
            os.pread(fd, 1, page * mmio.PAGE_SIZE)
    finally:
        os.close(fd)
    return path


def fincore(*paths):
    out = subprocess.run(["fincore", "--json", "-b", *map(str, paths)], capture_output=True, text=True,
                         check=True).stdout
    return {row["file"]: row for row in json.loads(out)["fincore"]}
