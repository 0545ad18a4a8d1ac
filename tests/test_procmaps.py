"""/proc/PID/maps and smaps as Region records: Mapping.regions() and mmio.maps()."""

import os
import subprocess
import sys

import pytest

import mmio
from conftest import run_python

PAGE = mmio.PAGE_SIZE


def plain_maps(pid="self"):
    """An independent reading of /proc/PID/maps: (start, end, perms, offset, inode, path)."""
    rows = []
    for line in open(f"/proc/{pid}/maps"):
        parts = line.split(None, 5)
        lo, hi = (int(x, 16) for x in parts[0].split("-"))
        rows.append((lo, hi, parts[1], int(parts[2], 16), int(parts[4]),
                     parts[5].strip() if len(parts) > 5 else None))
    return rows


def test_regions_match_proc_self_maps(data_file):
    path, _ = data_file
    with mmio.open(path, offset=PAGE + 10) as m:
        regions = m.regions()
        expected = [row for row in plain_maps() if row[0] < m.address + len(m) and row[1] > m.address]
        assert [(r.start, r.end, r.perms, r.offset, r.inode, r.path) for r in regions] == expected
        assert regions[0].path == str(path) and regions[0].offset == PAGE
        assert regions[0].inode == os.stat(path).st_ino


@pytest.mark.not_under_sanitizer  # ASan makes mlock/munlock/mlockall no-ops
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


def test_maps_of_self_and_of_a_child(tmp_path):
    regions = mmio.maps()
    assert any(r.path == "[stack]" for r in regions)
    # Anonymous regions can change between two reads (other threads allocate); file mappings of
    # the interpreter and its libraries do not.
    files = [(r.start, r.end, r.perms, r.offset, r.inode, r.path) for r in regions
             if r.path and r.path.endswith(".so")]
    assert files and set(files) <= set(plain_maps())
    # A child that maps a file of its own, then nothing new once it says so (a child just started may still be
    # inside execve, its maps half built).
    mapped = tmp_path / "only-the-child-maps-this.bin"
    mapped.write_bytes(bytes(3 * PAGE))
    child = subprocess.Popen([sys.executable, "-S", "-c", f"import mmap, time; f = open({str(mapped)!r}, 'rb'); "
                              "m = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ); print('mapped', flush=True); "
                              "time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline() == "mapped\n"
        theirs = mmio.maps(child.pid)
        assert [(r.start, r.end, r.perms, r.offset, r.inode, r.path) for r in theirs] == plain_maps(child.pid)
    finally:
        child.kill()
        child.wait()
    assert [(r.length, r.perms) for r in theirs if r.path == str(mapped)] == [(3 * PAGE, "r--s")]
    assert not any(r.path == str(mapped) for r in mmio.maps())
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


def test_maps_without_figures_lists_the_same_regions_cheaply():
    with mmio.anonymous(4 * PAGE, populate=True) as m:
        full = mmio.maps("self", start=m.address, end=m.address + len(m))
        quick = mmio.maps("self", start=m.address, end=m.address + len(m), figures=False)
    assert [(r.start, r.end, r.perms, r.inode, r.path) for r in quick] == [
        (r.start, r.end, r.perms, r.inode, r.path) for r in full]
    assert full[0].rss == 4 * PAGE and quick[0].rss == 0 and quick[0].vm_flags == frozenset()
