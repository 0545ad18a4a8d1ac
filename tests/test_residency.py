"""File residency: agreement with util-linux fincore, cachestat, touch/evict, the picture, the CLI."""

import errno
import os
import shutil
import xml.etree.ElementTree as ET

import numpy as np
import pytest

import mmio
from conftest import evict, fincore, run_python, sparse_file

PAGE = mmio.PAGE_SIZE


def test_counts_agree_with_fincore(tmp_path):
    assert shutil.which("fincore"), "util-linux fincore is needed (CI installs it)"
    files = [sparse_file(tmp_path / "a.bin"), sparse_file(tmp_path / "b.bin", 64, (1, 63)),
             sparse_file(tmp_path / "c.bin", 8, ())]
    ours = {str(p): mmio.residency(p) for p in files}
    theirs = fincore(*files)
    for path, r in ours.items():
        assert int(theirs[path]["pages"]) == r.resident
        assert int(theirs[path]["res"]) == r.resident * PAGE
    assert ours[str(files[0])].resident >= 9  # the pattern is there (fincore agrees on the exact count)


def test_residency_does_not_change_residency(tmp_path):
    path = sparse_file(tmp_path / "a.bin")
    first = mmio.residency(path)
    second = mmio.residency(path)
    np.testing.assert_array_equal(first.pages, second.pages)
    assert mmio.cache_stat(path).cached == first.resident


def test_cache_stat_counts(tmp_path):
    path = sparse_file(tmp_path / "a.bin")
    stat = mmio.cache_stat(path)
    assert stat.cached == mmio.residency(path).resident and stat.dirty == 0
    with open(path, "r+b") as f:
        f.seek(10 * PAGE)
        f.write(b"x")
    assert mmio.cache_stat(path, 10 * PAGE, PAGE).dirty == 1
    assert mmio.cache_stat(path, 0, 0) == mmio.CacheStat(0, 0, 0, 0, 0)
    with pytest.raises(ValueError, match="outside the file"):
        mmio.cache_stat(path, 0, 257 * PAGE)


def test_cache_stat_counts_writeback_and_evicted_pages(tmp_path):
    path = tmp_path / "f.bin"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        # Dirty, none under writeback: the flusher waits ~30 s before it writes a dirty page (if memory
        # pressure made it start early, the pages are written again, a few times at most).
        for attempt in range(5):
            os.pwrite(fd, bytes([attempt]) * (16 * PAGE), 0)
            stat = mmio.cache_stat(path)
            if stat.dirty == 16:
                break
        assert (stat.cached, stat.dirty, stat.writeback, stat.evicted) == (16, 16, 0, 0)
        os.fdatasync(fd)  # waits for the writeback too
        assert mmio.cache_stat(path) == mmio.CacheStat(16, 0, 0, 0, 0)  # a new file: nothing evicted yet
    finally:
        os.close(fd)
    # Pages reclaimed leave a shadow entry behind, which cachestat counts as evicted (POSIX_FADV_DONTNEED, what
    # mmio.evict uses, leaves none). MADV_PAGEOUT reclaims a clean page of a file mapped by no one else.
    with mmio.open(path) as m:
        for attempt in range(5):
            m.populate()
            m.advise("pageout")
            stat = mmio.cache_stat(path)
            if stat.evicted:
                break
    assert stat.evicted >= 1 and stat.cached + stat.evicted == 16 and (stat.dirty, stat.writeback) == (0, 0)
    assert mmio.cache_stat(path, 0, PAGE).evicted == (not mmio.residency(path, 0, 1).pages[0])


def test_touch_then_evict_round_trip(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(os.urandom(300 * PAGE + 5))
    assert mmio.evict(path, sync=True) == 0
    assert mmio.residency(path).resident == 0
    seen = []
    assert mmio.touch(path, chunk=64 * PAGE, progress=lambda done, total: seen.append((done, total))) == 301
    assert seen[-1] == (300 * PAGE + 5, 300 * PAGE + 5) and len(seen) == 5
    assert mmio.residency(path).fraction == 1.0
    assert mmio.evict(path) == 0
    assert mmio.touch(path, PAGE, PAGE, method="populate") == 1
    assert mmio.residency(path).pages[1]  # (read-ahead may bring neighbours too)
    with pytest.raises(ValueError, match="method"):
        mmio.touch(path, method="magic")


def test_evict_reports_what_the_kernel_kept(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(os.urandom(16 * PAGE))
    assert mmio.evict(path, sync=True) == 0
    with mmio.open(path) as m:
        m.populate()
        assert mmio.evict(path) == 16  # mapped pages stay
    assert mmio.evict(path) == 0


def test_evict_counts_dirty_pages_that_stayed_and_sync_lets_them_go(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(os.urandom(16 * PAGE))
    assert mmio.evict(path, sync=True) == 0
    with open(path, "r+b") as f:
        for _ in range(5):
            f.seek(0)
            f.write(b"dirty")
            f.flush()
            assert mmio.cache_stat(path).cached == 1  # the written page (dirty unless the flusher was quicker)
            # POSIX_FADV_DONTNEED starts writeback of the dirty page and drops it only if that finished first:
            # either outcome is the kernel's; what evict reports must be the one that happened.
            kept = mmio.evict(path)
            assert kept in (0, 1)
            assert kept == mmio.residency(path).resident == mmio.cache_stat(path).cached
        assert mmio.evict(path, sync=True) == 0  # written first, so it can go
        assert mmio.cache_stat(path).cached == 0


def test_hidden_page_cache_is_refused_not_invented(public_dir):
    path = public_dir / "root.bin"
    path.write_bytes(bytes(4 * PAGE))
    os.chmod(path, 0o644)
    proc = run_python(f"""
        import os, mmio
        os.setgid(65534); os.setuid(65534)
        for call in (mmio.residency, mmio.cache_stat):
            try:
                call({str(path)!r})
            except PermissionError as e:
                print(call.__name__, e.errno, "neither own nor may write" in str(e))
        print("evict", mmio.evict({str(path)!r}))
    """)
    assert proc.stdout.splitlines() == [f"residency {errno.EPERM} True", f"cache_stat {errno.EPERM} True",
                                        "evict None"]


def test_html_picture_is_valid_svg_with_the_fraction(tmp_path):
    path = sparse_file(tmp_path / "a.bin", 4000, range(0, 1000))
    r = mmio.residency(path)
    page = r._repr_html_()
    root = ET.fromstring(page)
    svg = root.find("{http://www.w3.org/2000/svg}svg")
    assert svg is not None and svg.get("width") == "640"
    rects = svg.findall("{http://www.w3.org/2000/svg}rect")
    assert 2 <= len(rects) <= 641
    assert f"{r.fraction:.1%}" in "".join(root.itertext())
    empty = mmio.Residency(np.zeros(0, bool), PAGE, 0, 0)
    ET.fromstring(empty._repr_html_())


def test_directory_and_list_give_a_table(tmp_path):
    (tmp_path / "sub").mkdir()
    for name in ("a", "b", "sub/c"):
        (tmp_path / name).write_bytes(bytes(PAGE))
    table = mmio.residency(tmp_path)
    assert sorted(os.path.basename(r.path) for r in table) == ["a", "b"]
    listed = mmio.residency([tmp_path / "a", tmp_path / "missing"])
    assert listed.rows[0].residency is not None and "No such file" in listed.rows[1].error
    ET.fromstring(listed._repr_html_())


def test_plot_needs_matplotlib_or_draws():
    r = mmio.Residency(np.array([True, False] * 50), PAGE, 0, 100 * PAGE)
    try:
        import matplotlib
        matplotlib.use("Agg")
    except ImportError:
        with pytest.raises(ImportError, match="pip install matplotlib"):
            r.plot()
    else:
        ax = r.plot()
        assert "50.0%" in ax.get_title()


def test_sparse_residency_shows_in_the_strip():
    from mmio.display import svg_strip
    pages = np.zeros(12800, bool)
    pages[::40] = True
    svg = ET.fromstring(svg_strip(pages, width=320))
    assert len(svg.findall("{http://www.w3.org/2000/svg}rect")) > 1
    full = ET.fromstring(svg_strip(np.ones(100, bool), width=10))
    colours = {r.get("fill") for r in full.findall("{http://www.w3.org/2000/svg}rect")[1:]}
    assert colours == {"#2b6cb0"}


# ---- residency of a path -------------------------------------------------------------------------


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


def test_hidden_page_cache_is_refused_through_mappings_and_buffers_too(public_dir):
    hidden, own = public_dir / "root.bin", public_dir / "nobody.bin"
    for path in (hidden, own):
        path.write_bytes(bytes(4 * PAGE))
        os.chmod(path, 0o644)
    os.chown(own, 65534, 65534)
    proc = run_python(f"""
        import mmap, os, numpy as np, mmio
        os.setgid(65534); os.setuid(65534)
        for path in ({str(hidden)!r}, {str(own)!r}):
            m = mmio.open(path)
            with open(path, "rb") as f:
                stdlib = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
            for name, target in (("Mapping", m), ("memoryview", memoryview(m)), ("memmap", np.memmap(path, mode="r")),
                                 ("mmap", stdlib), ("array", m.array()[PAGE:])):
                try:
                    print(name, mmio.residency(target).total)
                except PermissionError as e:
                    print(name, "refused", e.errno, "neither own nor may write" in str(e))
        print("anonymous", mmio.residency(np.ones(PAGE * 4, np.uint8)).total > 0)
    """, setup=f"PAGE = {PAGE}\n")
    refused = f"refused {errno.EPERM} True"
    assert proc.stdout.splitlines() == (
        [f"{name} {refused}" for name in ("Mapping", "memoryview", "memmap", "mmap", "array")]
        + ["Mapping 4", "memoryview 4", "memmap 4", "mmap 4", "array 3", "anonymous True"])


def _expected_runs(pattern, offset, length):
    """The (begin, end) byte runs of [offset, offset+length) on the pages of ``pattern``, worked out bytewise."""
    runs = []
    for page in sorted(pattern):
        begin, end = max(offset, page * PAGE), min(offset + length, (page + 1) * PAGE)
        if end <= begin:
            continue
        if runs and runs[-1][1] == begin:
            runs[-1] = (runs[-1][0], end)
        else:
            runs.append((begin, end))
    return runs


@pytest.mark.parametrize("offset, length", [
    (PAGE + 10, 3 * PAGE), (5 * PAGE - 1, 2), (9 * PAGE + 7, 2 * PAGE + 3), (4 * PAGE + 5, 12 * PAGE + 95),
    (16 * PAGE + 50, 10), (3 * PAGE + 1, 100), (10, 16 * PAGE + 80), (0, 16 * PAGE + 100), (8 * PAGE + 1, 0),
])
def test_file_residency_at_unaligned_ranges_matches_the_pages_read(tmp_path, offset, length):
    from conftest import evict
    size, pattern = 16 * PAGE + 100, {1, 2, 5, 9, 10, 11, 16}  # the last page holds the file's last 100 bytes
    path = tmp_path / "f.bin"
    path.write_bytes(os.urandom(size))
    evict(path)
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)  # one page per read, no read-ahead
        for page in sorted(pattern):
            os.pread(fd, 1, page * PAGE)
    finally:
        os.close(fd)
    whole = mmio.residency(path)
    assert {i for i in range(whole.total) if whole.pages[i]} == pattern and whole.total == 17
    r = mmio.residency(path, offset, length)
    first = offset // PAGE
    end = -(-(offset + length) // PAGE) if length else first  # an empty range touches no page
    assert (r.offset, r.length, r.total) == (offset, length, end - first)
    assert r.pages.tolist() == [page in pattern for page in range(first, end)]
    runs = _expected_runs(pattern, offset, length)
    assert r.runs() == runs
    assert r.resident_bytes == sum(b - a for a, b in runs)
    assert r.resident == len(pattern & set(range(first, end)))


def test_ranges_outside_a_file_name_it(tmp_path):
    path = tmp_path / "short.bin"
    path.write_bytes(bytes(10))
    for call in (mmio.touch, mmio.residency, mmio.cache_stat):
        with pytest.raises(ValueError, match=f"^offset 11 is outside the file '{path}' of 10 bytes$"):
            call(path, 11)


def test_file_residency_asks_per_page_only_where_the_cache_is_mixed(tmp_path):
    # cachestat answers a range wholly cached or wholly absent at once; only 2 MiB ranges it finds mixed
    # are probed page by page (mincore). The map is the same either way.
    from mmio import _residency
    if not _cachestat_available(tmp_path):
        pytest.skip("cachestat needs Linux 6.5")
    path = tmp_path / "big.bin"
    pages = 8 * _residency.LEAF_PAGES  # 16 MiB
    path.write_bytes(os.urandom(pages * PAGE))
    mmio.touch(path)
    whole = mmio.residency(path)
    assert whole.fraction == 1.0 and _residency._probes == [1, 0]  # one call, no page probed
    evict(path)
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
        for page in (3, 5 * _residency.LEAF_PAGES + 7):  # two pages, in two different 2 MiB leaves
            os.pread(fd, 1, page * PAGE)
    finally:
        os.close(fd)
    sparse = mmio.residency(path)
    assert set(np.flatnonzero(sparse.pages).tolist()) == {3, 5 * _residency.LEAF_PAGES + 7}
    calls, probed = _residency._probes
    assert probed == 2 * _residency.LEAF_PAGES  # just the two mixed leaves, page by page
    with mmio.open(path) as m:  # mincore over the whole file agrees
        assert (m.residency().pages == sparse.pages).all()


def _cachestat_available(tmp_path):
    probe = tmp_path / "probe"
    probe.write_bytes(b"x")
    try:
        mmio.cache_stat(probe)
    except OSError as exc:
        if exc.errno == errno.ENOSYS:
            return False
        raise
    return True


# ---- the table of many files ------------------------------------------------------------------------------


def _files_with(tmp_path, cached_pages):
    """One file per entry of ``cached_pages`` (name -> (pages, cached pages from the start))."""
    for name, (pages, cached) in cached_pages.items():
        sparse_file(tmp_path / name, pages, range(cached))
    return tmp_path


def test_table_order_relative_names_and_sorted(tmp_path):
    d = _files_with(tmp_path, {"a": (8, 1), "b": (2, 2), "c": (16, 4), "sub-zero": (1, 0)})
    (d / "unreadable").write_bytes(b"x")
    os.chmod(d / "unreadable", 0)
    table = mmio.residency(d)
    names = [table.name(r) for r in table]
    if os.geteuid() == 0:  # root reads anything: the file is a row like the others
        names.remove("unreadable")
    assert names[:4] == ["c", "b", "a", "sub-zero"]  # most resident bytes first (c 4, b 2, a 1 pages)
    assert table.root == str(d)
    assert [table.name(r) for r in table.sorted("size")][:3] == ["c", "a", "b"]
    assert [table.name(r) for r in table.sorted("name")] == sorted(names + ["unreadable"] * (os.geteuid() == 0))
    walked = mmio.residency(d, sort=None)
    assert [table.name(r) for r in walked] == sorted(table.name(r) for r in walked)
    with pytest.raises(ValueError, match="sort by one of"):
        table.sorted("age")
    listed = mmio.residency([d / "a", d / "missing", d / "c"])
    assert [listed.name(r) for r in listed] == ["c", "a", "missing"]  # the unknown last
    elsewhere = mmio.residency([d / "a", "/etc/hostname"])
    assert elsewhere.root is None and {elsewhere.name(r) for r in elsewhere} == {str(d / "a"), "/etc/hostname"}


def test_table_cap_totals_and_more_line(tmp_path):
    d = _files_with(tmp_path, {f"f{i:02}": (4, i % 5) for i in range(12)})
    os.symlink("loop", d / "loop")  # an error row
    table = mmio.residency(d)
    table.limit = 5
    resident = sum(r.residency.resident for r in table if r.residency) * PAGE
    assert table.resident_bytes == resident and table.size == 12 * 4 * PAGE and table.errors == 1
    text = table.to_string()
    lines = text.splitlines()
    assert lines[0] == f"{d}: 13 files, {human(resident)} of {human(48 * PAGE)} resident " \
                       f"({resident / (48 * PAGE):.1%}), 1 unknown"
    assert lines[1].split() == ["SIZE", "RESIDENT", "%", "PAGES", "FILE"]
    assert len(lines) == 1 + 1 + 5 + 1 + 1
    shown = table.rows[:5]
    rest = sum(r.residency.resident for r in table.rows[5:] if r.residency) * PAGE
    assert lines[-2] == f"and 8 more files ({human(rest)} resident)"
    assert lines[-1].endswith("total (13 files, 1 unknown)") and human(resident) in lines[-1]
    assert [line.split()[-1] for line in lines[2:7]] == [table.name(r) for r in shown]
    assert table.to_string(limit=None).count("\n") == len(lines) - 1 + 8 - 1  # all rows, no "more" line
    assert str(table) == text and repr(table).startswith(f"<mmio.ResidencyTable {d}: 13 files")

    page = ET.fromstring(table._repr_html_())
    body = page.find("tbody").findall("tr")
    assert len(body) == 6 and "and 8 more files" in "".join(body[-1].itertext())
    cells = body[0].findall("td")
    assert [c.tag for c in cells] == ["td"] * 5 and "".join(cells[0].itertext()) == table.name(shown[0])
    for cell in cells[1:4]:
        style = cell.get("style")
        assert "text-align:right" in style and "white-space:nowrap" in style
    assert cells[4].find("{http://www.w3.org/2000/svg}svg") is not None
    foot = "".join(page.find("tfoot").itertext())
    assert "total (13 files, 1 unknown)" in foot and human(resident) in foot
    everything = ET.fromstring(mmio.pagecache.ResidencyTable(table.rows, table.root, None)._repr_html_())
    assert len(everything.find("tbody").findall("tr")) == 13
    errors = [tr for tr in everything.find("tbody").findall("tr") if "loop" in "".join(tr.itertext())]
    assert errors == everything.find("tbody").findall("tr")[-1:]  # the error row last


def human(n):
    from mmio._units import human_bytes
    return human_bytes(n)


def short(n):
    from mmio._units import human_bytes
    return human_bytes(n, compact=True)


def test_strip_has_offset_ticks_and_a_key(tmp_path):
    path = sparse_file(tmp_path / "a.bin", 2560, range(0, 1000))  # 10 MiB with 4 KiB pages
    r = mmio.residency(path)
    root = ET.fromstring(r._repr_html_())
    svg = root.find("{http://www.w3.org/2000/svg}svg")
    labels = ["".join(t.itertext()) for t in svg.iter("{http://www.w3.org/2000/svg}text")]
    size = 2560 * PAGE
    from mmio.display import offset_ticks
    assert labels == [label for _, label, _ in offset_ticks(0, size, 640)]
    assert labels[0] == "0" and labels[-1] == short(size) and len(labels) >= 3
    assert len(svg.findall("{http://www.w3.org/2000/svg}line")) == len(labels)
    assert "in the page cache" in "".join(root.itertext()) and "1 px = " in "".join(root.itertext())
    part = mmio.residency(path, 3 * PAGE, 2 * PAGE)
    ticks = offset_ticks(part.offset, part.length, 640)
    assert ticks[0][1] == short(3 * PAGE) and ticks[-1][1] == short(5 * PAGE)
