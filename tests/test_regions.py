"""resize, regions()/maps() and the any-buffer functions."""

import errno
import mmap
import os

import numpy as np
import pytest

import mmio
from conftest import run_python

PAGE = mmio.PAGE_SIZE


def plain_maps():
    """An independent reading of /proc/self/maps: (start, end, perms, offset, inode, path)."""
    rows = []
    for line in open("/proc/self/maps"):
        parts = line.split(None, 5)
        lo, hi = (int(x, 16) for x in parts[0].split("-"))
        rows.append((lo, hi, parts[1], int(parts[2], 16), int(parts[4]),
                     parts[5].strip() if len(parts) > 5 else None))
    return rows


# ---- regions / maps --------------------------------------------------------------------------

def test_regions_match_proc_self_maps(data_file):
    path, _ = data_file
    with mmio.open(path, offset=PAGE + 10) as m:
        regions = m.regions()
        expected = [row for row in plain_maps() if row[0] < m.address + len(m) and row[1] > m.address]
        assert [(r.start, r.end, r.perms, r.offset, r.inode, r.path) for r in regions] == expected
        assert regions[0].path == str(path) and regions[0].offset == PAGE
        assert regions[0].inode == os.stat(path).st_ino


def test_regions_figures_follow_what_happens():
    with mmio.anonymous(16 * PAGE, shared=False) as m:
        # Flags no neighbour has, so the kernel cannot merge this region with another
        # (a merged line of /proc/self/maps would carry the neighbour's figures too).
        m.advise("dontdump")
        m.advise("dontfork")
        (before,) = m.regions()
        assert (before.start, before.end) == (m.address, m.address + 16 * PAGE)
        assert before.rss == 0 and before.size == 16 * PAGE and not before.shared
        m.populate(write=True)
        (after,) = m.regions()
        assert after.rss == 16 * PAGE and after.private_dirty == 16 * PAGE and after.anonymous == 16 * PAGE
        m.lock(0, 4 * PAGE)
        locked, rest = m.regions()  # locking splits the region
        assert locked.locked == 4 * PAGE and "lo" in locked.vm_flags and rest.locked == 0
        m.unlock()
        m.protect("r", 8 * PAGE)
        assert [r.perms for r in m.regions()] == ["rw-p", "r--p"]


def test_maps_of_self_and_of_a_child():
    regions = mmio.maps()
    assert any(r.path == "[stack]" for r in regions)
    # Anonymous regions can change between two reads (other threads allocate); file mappings of
    # the interpreter and its libraries do not.
    files = [(r.start, r.end, r.perms, r.offset, r.inode, r.path) for r in regions
             if r.path and r.path.endswith(".so")]
    assert files and set(files) <= set(plain_maps())
    with pytest.raises(ProcessLookupError):
        mmio.maps(2 ** 22 + 12345)
    with pytest.raises(ValueError):
        mmio.maps(-1)


def test_maps_of_another_users_process_is_refused():
    proc = run_python("""
        import os, mmio
        os.setgid(65534); os.setuid(65534)
        try:
            mmio.maps(1)
        except PermissionError as e:
            print("refused", e.filename)
    """)
    assert proc.stdout.split() == ["refused", "/proc/1/smaps"]


# ---- resize ----------------------------------------------------------------------------------

def test_resize_r_plus_grows_the_file_and_keeps_data(tmp_path):
    path = tmp_path / "grow.bin"
    with mmio.open(path, "w+", size=10) as m:
        m[:10] = b"0123456789"
        m.resize(3 * PAGE + 1)
        assert len(m) == 3 * PAGE + 1 and m[:10] == b"0123456789"
        m[-1] = 255
        assert os.path.getsize(path) == 3 * PAGE + 1
        m.resize(5)
        assert m[:] == b"01234"
        assert os.path.getsize(path) == 3 * PAGE + 1  # never shrunk
        m.resize(0)
        assert len(m) == 0 and m[:] == b""
        m.resize(20)
        assert m[:10] == b"0123456789"
    assert path.read_bytes()[-1] == 255


def test_resize_read_only_modes_stay_inside_the_file(data_file):
    path, payload = data_file
    for mode in ("r", "c"):
        with mmio.open(path, mode, offset=7, length=100) as m:
            m.resize(len(payload) - 7)
            assert m[:] == payload[7:]
            with pytest.raises(ValueError, match="never grows it"):
                m.resize(len(payload))
            m.resize(0)
            m.resize(50)
            assert m[:] == payload[7:57]
    assert path.read_bytes() == payload


def test_resize_refusals():
    with mmio.anonymous(PAGE) as m:
        arr = m.array()
        with pytest.raises(BufferError, match="live export"):
            m.resize(2 * PAGE)
        del arr
        with pytest.raises(ValueError, match="cannot grow"):
            m.resize(2 * PAGE)
        with pytest.raises(ValueError, match="negative"):
            m.resize(-1)
        m.resize(10)
        assert len(m) == 10
    with mmio.anonymous(4 * PAGE, shared=False) as m:
        m[0] = 9
        m.resize(1 << 20)
        assert m[0] == 9 and m[(1 << 20) - 1] == 0
        m.protect("r", PAGE, PAGE)
        with pytest.raises(ValueError, match="different protections"):
            m.resize(PAGE)
    m.close()
    with pytest.raises(ValueError, match="closed"):
        m.resize(1)


# ---- any buffer ------------------------------------------------------------------------------

def test_any_buffer_on_stdlib_mmap():
    mm = mmap.mmap(-1, 8 * PAGE)
    mm[3 * PAGE] = 1
    r = mmio.residency(mm)
    assert r.to_string() == "...*...." and r.length == 8 * PAGE
    part = mmio.residency(mm, 3 * PAGE - 1, 2)
    assert (part.total, part.resident, part.runs()) == (2, 1, [(3 * PAGE, 3 * PAGE + 1)])
    mmio.advise(mm, "random")
    addr = [row for row in mmio.maps() if "rr" in row.vm_flags]
    assert addr, "random advice not visible in smaps"
    mmio.lock(mm, 0, PAGE)
    assert mmio.residency(mm, 0, PAGE).resident == 1
    mmio.unlock(mm)
    with pytest.raises(ValueError, match="discard=True"):
        mmio.advise(mm, "dontneed")
    mmio.advise(mm, "remove", discard=True)
    assert mm[3 * PAGE] == 0
    mm.close()  # mmio released the buffer it held


def test_any_buffer_on_numpy_memmap_and_views(tmp_path):
    path = tmp_path / "arr.f8"
    np.arange(4 * PAGE // 8 * 4, dtype="f8").tofile(path)
    arr = np.memmap(path, dtype="f8", mode="r")
    whole = mmio.residency(arr)
    assert whole.total == 16 and whole.length == 16 * PAGE
    view = arr[PAGE // 8 * 2: PAGE // 8 * 5: 7]   # strided, pages 2-4
    r = mmio.residency(view)
    assert r.total == 3
    backwards = mmio.residency(arr[::-1])
    assert backwards.total == 16
    mmio.advise(arr, "willneed")
    with pytest.raises(ValueError, match="outside the buffer"):
        mmio.residency(arr, 0, 17 * PAGE)
    with pytest.raises(TypeError):
        mmio.residency(3.5)


def test_residency_of_a_path(tmp_path):
    from conftest import evict
    path = tmp_path / "f.bin"
    path.write_bytes(os.urandom(8 * PAGE))
    evict(path)
    with open(path, "rb") as f:
        f.seek(2 * PAGE)
        f.read(PAGE)
    r = mmio.residency(path)
    assert r.pages[2] and r.total == 8
    part = mmio.residency(path, PAGE + 5, 2 * PAGE)
    assert part.offset == PAGE + 5 and part.total == 3 and part.pages[1]
    with pytest.raises(FileNotFoundError):
        mmio.residency(tmp_path / "missing")


def test_residency_of_a_file_the_kernel_hides(public_dir):
    path = public_dir / "root-owned.bin"
    path.write_bytes(bytes(PAGE))
    os.chmod(path, 0o644)
    proc = run_python(f"""
        import os, mmio
        os.setgid(65534); os.setuid(65534)
        try:
            mmio.residency({str(path)!r})
        except PermissionError as e:
            print(e.errno, "neither own nor may write" in str(e))
    """)
    assert proc.stdout.split() == [str(errno.EPERM), "True"]


def test_maps_without_figures_lists_the_same_regions_cheaply():
    with mmio.anonymous(4 * PAGE, populate=True) as m:
        full = mmio.maps("self", start=m.address, end=m.address + len(m))
        quick = mmio.maps("self", start=m.address, end=m.address + len(m), figures=False)
    assert [(r.start, r.end, r.perms, r.inode, r.path) for r in quick] == [
        (r.start, r.end, r.perms, r.inode, r.path) for r in full]
    assert full[0].rss == 4 * PAGE and quick[0].rss == 0 and quick[0].vm_flags == frozenset()
