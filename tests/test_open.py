"""mmio.open and mmio.anonymous: targets, modes, ranges and every refusal."""

import errno
import os
import pathlib

import numpy as np
import pytest

import mmio
from conftest import evict, run_python, vm_flags

PAGE = mmio.PAGE_SIZE


# ---- targets -------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", [str, pathlib.Path, os.fsencode])
def test_path_targets(data_file, kind):
    path, payload = data_file
    with mmio.open(kind(path)) as m:
        assert bytes(m) == payload
        assert m.path == kind(path) if kind is not pathlib.Path else m.path == str(path)
        assert (m.size, m.offset, m.mode, m.readonly) == (len(payload), 0, "r", True)


def test_file_object_target_flushes_and_names_the_file(tmp_path):
    path = tmp_path / "f.bin"
    with open(path, "w+b") as f:
        f.write(b"pending bytes")  # still in Python's buffer
        with mmio.open(f) as m:
            assert bytes(m) == b"pending bytes"
            assert m.path == str(path)


def test_fd_target_is_duplicated(data_file):
    path, payload = data_file
    fd = os.open(path, os.O_RDONLY)
    m = mmio.open(fd)
    os.close(fd)  # mmio keeps its own duplicate
    assert m.path is None
    assert bytes(m[:10]) == payload[:10]
    m.close()


def test_fd_target_reopened_fd_number_does_not_alias(data_file, tmp_path):
    path, payload = data_file
    fd = os.open(path, os.O_RDWR)
    with mmio.open(fd, "r+") as m:
        os.close(fd)
        other = tmp_path / "other"
        other.write_bytes(b"x" * 10)
        fd2 = os.open(other, os.O_RDWR)  # likely reuses the number
        m[0] = 7
        os.close(fd2)
        assert other.read_bytes() == b"x" * 10
    assert path.read_bytes()[0] == 7


@pytest.mark.parametrize("target", [3.5, None, True, object()])
def test_bad_target_type(target):
    with pytest.raises(TypeError, match="path, a file object or a file descriptor"):
        mmio.open(target)


def test_mapping_cannot_be_constructed_directly():
    with pytest.raises(TypeError, match="mmio.open"):
        mmio.Mapping()


# ---- refusals with OSError -------------------------------------------------------------------

def test_missing_file_names_the_file(tmp_path):
    missing = tmp_path / "nope.bin"
    with pytest.raises(FileNotFoundError) as info:
        mmio.open(missing)
    assert info.value.errno == errno.ENOENT
    assert info.value.filename == str(missing)
    assert "could not open the file for reading" in str(info.value)


def test_directory_is_refused(tmp_path):
    with pytest.raises(IsADirectoryError) as info:
        mmio.open(tmp_path)
    assert info.value.filename == str(tmp_path)
    with pytest.raises(IsADirectoryError):
        mmio.open(tmp_path, "r+")


def test_read_only_fd_asked_for_write(data_file):
    path, _ = data_file
    fd = os.open(path, os.O_RDONLY)
    try:
        for mode in ("r+", "w+"):
            with pytest.raises(PermissionError, match="open read-only") as info:
                mmio.open(fd, mode, size=10 if mode == "w+" else None)
            assert info.value.errno == errno.EACCES
    finally:
        os.close(fd)
    assert path.stat().st_size == 3 * PAGE + 123  # w+ did not truncate


def test_write_only_fd(data_file):
    path, _ = data_file
    fd = os.open(path, os.O_WRONLY)
    try:
        with pytest.raises(PermissionError, match="write-only"):
            mmio.open(fd)
    finally:
        os.close(fd)


def test_closed_fd():
    r, w = os.pipe()
    os.close(r)
    os.close(w)
    with pytest.raises(OSError) as info:
        mmio.open(r)
    assert info.value.errno == errno.EBADF


def test_pipe_is_refused():
    r, w = os.pipe()
    try:
        with pytest.raises(OSError) as info:
            mmio.open(r)
        assert info.value.errno == errno.ENODEV
    finally:
        os.close(r)
        os.close(w)


def test_character_device_needs_length():
    with pytest.raises(ValueError, match="pass length="):
        mmio.open("/dev/zero")
    with mmio.open("/dev/zero", "c", length=PAGE) as m:
        assert bytes(m) == bytes(PAGE)


def test_unreadable_file_for_unprivileged_user(public_dir):
    path = public_dir / "private.bin"
    path.write_bytes(b"secret")
    os.chmod(path, 0o600)
    proc = run_python(f"""
        import os, mmio
        os.setgid(65534); os.setuid(65534)
        try:
            mmio.open({str(path)!r})
        except PermissionError as e:
            print(e.errno, e.filename)
    """)
    assert proc.stdout.split() == [str(errno.EACCES), str(path)]


# ---- modes ---------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["x", "rw", "w", "", None, 1])
def test_bad_mode(data_file, mode):
    with pytest.raises(ValueError, match="mode must be one of"):
        mmio.open(data_file[0], mode)


@pytest.mark.parametrize("alias, mode", [("readonly", "r"), ("readwrite", "r+"),
                                         ("copyonwrite", "c")])
def test_numpy_mode_words(data_file, alias, mode):
    with mmio.open(data_file[0], alias) as m:
        assert m.mode == mode


def test_read_only_mapping_refuses_writes(data_file):
    path, payload = data_file
    with mmio.open(path) as m:
        with pytest.raises(TypeError, match="read-only"):
            m[0] = 1
        with pytest.raises(TypeError, match="read-only"):
            m[0:2] = b"ab"
        with pytest.raises(ValueError, match="WRITEABLE"):
            np.frombuffer(m, dtype=np.uint8).setflags(write=True)
        arr = m.array()
        assert not arr.flags.writeable
        with pytest.raises(ValueError):
            arr[0] = 1
        del arr
    assert path.read_bytes() == payload


def test_r_plus_writes_reach_a_plain_read(data_file):
    path, payload = data_file
    with mmio.open(path, "r+") as m:
        m[PAGE:PAGE + 5] = b"hello"
        arr = m.array()
        arr[-1] = 42
        with open(path, "rb") as f:  # no sync: the page cache is shared
            seen = f.read()
        del arr
    assert seen[PAGE:PAGE + 5] == b"hello"
    assert seen[-1] == 42
    assert len(seen) == len(payload)


def test_r_plus_never_grows_the_file(data_file):
    path, payload = data_file
    with pytest.raises(ValueError, match="never grows the file"):
        mmio.open(path, "r+", length=len(payload) + 1)
    assert path.stat().st_size == len(payload)


def test_copy_on_write_is_private(data_file):
    path, payload = data_file
    with mmio.open(path, "c") as private, mmio.open(path) as shared:
        assert not private.readonly
        private[0:4] = b"COW!"
        private.array()[10] = 99
        assert private[0:4] == b"COW!"
        assert shared[0:4] == payload[0:4]
        assert shared[10] == payload[10]
    assert path.read_bytes() == payload


def test_w_plus_creates_or_truncates(tmp_path):
    path = tmp_path / "new.bin"
    with mmio.open(path, "w+", size=2 * PAGE + 1) as m:
        assert bytes(m) == bytes(2 * PAGE + 1)
        m[-3:] = b"end"
    assert path.read_bytes()[-3:] == b"end"
    with mmio.open(path, "w+", size=10) as m:
        assert bytes(m) == bytes(10)
    assert path.stat().st_size == 10


def test_w_plus_needs_size_and_leaves_the_file_alone(data_file):
    path, payload = data_file
    with pytest.raises(ValueError, match="needs its size"):
        mmio.open(path, "w+")
    with pytest.raises(ValueError, match="must not be negative"):
        mmio.open(path, "w+", size=-1)
    with pytest.raises(ValueError, match="not a Advice|not an? Advice"):
        mmio.open(path, "w+", size=10, advice="bogus")
    with pytest.raises(ValueError, match="past the end"):
        mmio.open(path, "w+", size=10, offset=11)
    with pytest.raises(ValueError, match="outside the file"):
        mmio.open(path, "w+", size=10, offset=5, length=6)
    assert path.read_bytes() == payload


def test_size_only_for_w_plus(data_file):
    with pytest.raises(ValueError, match="only for mode 'w\\+'"):
        mmio.open(data_file[0], "r+", size=10)


# ---- ranges --------------------------------------------------------------------------------

@pytest.mark.parametrize("offset", [0, 1, 100, PAGE - 1, PAGE, PAGE + 7, 3 * PAGE + 122])
def test_unaligned_offsets(data_file, offset):
    path, payload = data_file
    with mmio.open(path, offset=offset) as m:
        assert m.offset == offset
        assert len(m) == len(payload) - offset
        assert bytes(m) == payload[offset:]
    with mmio.open(path, offset=offset, length=1) as m:
        assert m[0] == payload[offset]


@pytest.mark.parametrize("kwargs, message", [
    ({"offset": -1}, "offset must not be negative"),
    ({"length": -1}, "length must not be negative"),
    ({"offset": 3 * PAGE + 124}, "past the end of the file"),
    ({"offset": 2 ** 80}, "larger than any file"),
    ({"length": 2 ** 80}, "larger than any file"),
    ({"offset": 10, "length": 3 * PAGE + 114}, "outside the file of 12411 bytes"),
])
def test_bad_ranges(data_file, kwargs, message):
    with pytest.raises(ValueError, match=message.replace("12411", str(3 * PAGE + 123))):
        mmio.open(data_file[0], **kwargs)


def test_empty_mappings(tmp_path, data_file):
    empty = tmp_path / "empty"
    empty.touch()
    for m in (mmio.open(empty), mmio.open(data_file[0], offset=5, length=0),
              mmio.open(data_file[0], offset=3 * PAGE + 123), mmio.anonymous(0)):
        assert len(m) == 0 and m.size == 0
        assert bytes(m) == b""
        assert m[:] == b""
        arr = m.array("f8")
        assert arr.shape == (0,) and type(arr) is np.ndarray
        with pytest.raises(BufferError):
            m.close()
        del arr
        assert m.residency().total == 0
        m.close()
        assert m.closed


# ---- open-time options -----------------------------------------------------------------------

def test_populate_brings_a_cold_file_in(tmp_path):
    path = tmp_path / "cold.bin"
    path.write_bytes(os.urandom(64 * PAGE))
    for mode in ("r", "c"):
        evict(path)
        with mmio.open(path) as probe:
            assert probe.residency().resident == 0  # cold: what is resident below, populate brought in
        with mmio.open(path, mode, populate=True) as m:
            assert m.residency().resident == 64, mode


def test_populate_copy_on_write_does_not_copy_pages(tmp_path):
    path = tmp_path / "cow.bin"
    path.write_bytes(bytes(256 * PAGE))
    with mmio.open(path, "c", populate=True) as m:
        regions = [r for r in open("/proc/self/smaps").read().split("\n") if r]
        text = "\n".join(regions)
        start = text.index(f"{m.address & ~(PAGE - 1):x}-")
        block = text[start:].split("VmFlags")[0]
        anon_kb = int(block.split("\nAnonymous:")[1].split()[0])
        assert anon_kb == 0  # MAP_POPULATE would have copied all 1 MiB


@pytest.mark.parametrize("advice, flag", [("random", "rr"), ("sequential", "sr"),
                                          (mmio.Advice.DONTDUMP, "dd")])
def test_advice_at_open(data_file, advice, flag):
    with mmio.open(data_file[0], advice=advice) as m:
        assert flag in vm_flags(m.address)


def test_huge_at_open(tmp_path):
    with mmio.anonymous(4 << 20, huge=True, populate=True) as m:
        assert "hg" in vm_flags(m.address)
        assert m.residency().fraction == 1.0


# ---- anonymous memory ---------------------------------------------------------------------

def test_anonymous_is_zeroed_and_writable():
    with mmio.anonymous(3 * PAGE, shared=False) as m:
        assert m.mode == "c" and m.path is None and not m.readonly
        assert bytes(m) == bytes(3 * PAGE)
        m.array("u4")[:] = 7
        assert m.array("u4").sum() == 7 * 3 * PAGE // 4


def test_anonymous_bad_length():
    with pytest.raises(ValueError, match="must not be negative"):
        mmio.anonymous(-1)
    with pytest.raises(TypeError):
        mmio.anonymous("10")


@pytest.mark.parametrize("shared", [True, False])
def test_anonymous_across_fork(shared):
    m = mmio.anonymous(PAGE, shared=shared)
    pid = os.fork()
    if pid == 0:  # child: write and leave without running any cleanup
        m[0:6] = b"child!"
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert m[0:6] == (b"child!" if shared else bytes(6))
    m.close()


def test_anonymous_populate_resident():
    with mmio.anonymous(16 * PAGE, populate=True) as m:
        assert m.residency().resident == 16


# ---- hostile targets and arguments: NUL bytes, FIFOs, discarding advice, huge numbers ---------------

def test_nul_byte_in_path_is_refused_before_anything_is_opened(data_file):
    path, payload = data_file
    with pytest.raises(ValueError, match="null byte"):
        mmio.open(str(path) + "\0.new", "w+", size=0)
    assert path.read_bytes() == payload


def test_discarding_advice_at_open_is_refused(data_file):
    path, payload = data_file
    for mode, advice in (("r+", "remove"), ("c", "dontneed"), ("c", "free")):
        with pytest.raises(ValueError, match="throw data away"):
            mmio.open(path, mode, advice=advice)
    assert path.read_bytes() == payload


def test_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(OSError) as info:
        mmio.open(fifo)
    assert info.value.errno == errno.ENODEV


def test_mode_is_case_insensitive(data_file):
    with mmio.open(data_file[0], "R+") as m:
        assert m.mode == "r+"


@pytest.mark.parametrize("call", [
    lambda p: mmio.open("/dev/zero", offset=2 ** 70, length=10),
    lambda p: mmio.open("/dev/zero", length=2 ** 70),
    lambda p: mmio.open(p, "w+", size=2 ** 70),
    lambda p: mmio.anonymous(2 ** 63),
])
def test_huge_numbers_are_value_errors(tmp_path, call):
    with pytest.raises(ValueError, match="larger than"):
        call(tmp_path / "f")


@pytest.mark.parametrize("fd", [-1, 2 ** 31, 2 ** 64])
def test_descriptors_no_process_can_have_are_bad_descriptors(fd):
    with pytest.raises(OSError) as info:
        mmio.open(fd)
    assert info.value.errno == errno.EBADF and f"could not use file descriptor {fd}" in str(info.value)
