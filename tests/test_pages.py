"""The range engine: one argument check for every entry point, the page span a range covers."""

import mmap

import numpy as np
import pytest

import mmio

PAGE = mmio.PAGE_SIZE


@pytest.fixture
def targets(data_file):
    """Every way to name a range, each a callable taking (offset, length)."""
    path, _ = data_file
    mapping = mmio.open(path)
    buffer = mmap.mmap(-1, 4 * PAGE)
    yield {
        "Mapping.advise": lambda o, n: mapping.advise("normal", o, n),
        "Mapping.residency": lambda o, n: mapping.residency(o, n),
        "Mapping.sync": lambda o, n: mapping.sync(o, n),
        "Mapping.populate": lambda o, n: mapping.populate(o, n),
        "Mapping.prefetch": lambda o, n: mapping.prefetch(o, n),
        "residency(path)": lambda o, n: mmio.residency(path, o, n),
        "cache_stat(path)": lambda o, n: mmio.cache_stat(path, o, n),
        "touch(path)": lambda o, n: mmio.touch(path, o, n),
        "residency(buffer)": lambda o, n: mmio.residency(buffer, o, n),
        "advise(buffer)": lambda o, n: mmio.advise(buffer, "normal", o, n),
        "lock(buffer)": lambda o, n: mmio.lock(buffer, o, n),
    }
    mapping.close()
    buffer.close()


@pytest.mark.parametrize("offset, length, error, message", [
    (1.5, None, TypeError, "offset must be an integer, not float"),
    (0, "4", TypeError, "length must be an integer, not str"),
    (-1, None, ValueError, "offset must not be negative, got -1"),
    (0, -1, ValueError, "length must not be negative, got -1"),
    (2 ** 64, None, ValueError, r"offset 18446744073709551616 is outside the \w+( '[^']+')? of \d+ bytes"),
    (10, 2 ** 63, ValueError, r"range \[10, 9223372036854775818\) is outside the \w+( '[^']+')? of \d+ bytes"),
])
def test_every_entry_point_checks_ranges_alike(targets, offset, length, error, message):
    for name, call in targets.items():
        with pytest.raises(error, match=message):
            call(offset, length)


@pytest.mark.parametrize("threads, error, message", [
    (1.5, TypeError, "threads must be an integer, not float"),
    (0, ValueError, "threads must be between 1 and 64, got 0"),
    (2 ** 64, ValueError, "threads must be between 1 and 64, got 18446744073709551616"),
])
def test_every_entry_point_checks_threads_alike(data_file, tmp_path, threads, error, message):
    path, _ = data_file
    np.save(tmp_path / "a.npy", np.arange(10))
    with mmio.open(path) as m:
        calls = [lambda: m.populate(threads=threads), lambda: m.readinto(bytearray(8), threads=threads),
                 lambda: mmio.load(tmp_path / "a.npy", threads=threads)]
        for call in calls:
            with pytest.raises(error, match=message):
                call()


@pytest.mark.parametrize("chunk", [-1, 0, PAGE - 1, 2 ** 63, 2 ** 64])
def test_prefetch_and_touch_chunks_are_checked_not_overflowed(data_file, chunk):
    path, _ = data_file
    with mmio.open(path) as m:
        with pytest.raises(ValueError, match="chunk must be between one page"):
            m.prefetch(chunk=chunk)
    with pytest.raises(ValueError, match="chunk must be between one page"):
        mmio.touch(path, chunk=chunk)


@pytest.mark.not_under_sanitizer  # ASan makes mlock/munlock/mlockall no-ops
def test_unaligned_ranges_cover_every_page_they_touch(data_file):
    path, _ = data_file
    with mmio.open(path) as m:
        assert m.residency(PAGE - 1, 2).total == 2
        assert m.residency(PAGE, PAGE).total == 1
        assert m.residency(PAGE + 1, 0).total == 0
        m.lock(PAGE - 1, 2)  # two pages locked, not one
        assert sum(r.locked for r in m.regions()) == 2 * PAGE
        m.unlock()


def test_a_refused_advice_is_explained_on_every_entry_point():
    # MADV_REMOVE on private anonymous memory: the kernel says EINVAL, and every entry point says why.
    explained = r"could not apply advice REMOVE \(the kernel does not allow MADV_REMOVE on this memory\)"
    with mmio.anonymous(4 * PAGE, shared=False) as m:
        for call in (lambda: m.advise("remove", discard=True), lambda: mmio.advise(m, "remove", discard=True),
                     lambda: mmio.advise(m.array(), "remove", discard=True)):
            with pytest.raises(OSError, match=explained) as info:
                call()
            assert info.value.errno == 22


def test_discarding_advice_on_a_mapping_spares_bytes_outside_the_range():
    with mmio.anonymous(3 * PAGE, shared=False) as m:
        m[:] = b"x" * (3 * PAGE)
        m.advise("dontneed", 10, 20, discard=True)            # inside one page: nothing may go
        assert m[:] == b"x" * (3 * PAGE)
        m.advise("dontneed", 0, PAGE + 10, discard=True)      # the first page only: the second holds bytes after
        assert m[:PAGE] == bytes(PAGE) and m[PAGE:] == b"x" * (2 * PAGE)
        m.advise("dontneed", PAGE + 1, discard=True)          # to the end: the last page goes, the shared one stays
        assert m[PAGE:2 * PAGE] == b"x" * PAGE and m[2 * PAGE:] == bytes(PAGE)


def test_prefetch_accepts_a_chunk_that_is_not_a_page_multiple():
    with mmio.anonymous(4 * PAGE) as m:
        m.prefetch(chunk=PAGE + 1)


def test_mapping_arguments_say_what_they_want(data_file):
    with mmio.open(data_file[0], "c") as m:
        with pytest.raises(TypeError, match="offset must be an integer, not float"):
            m.array("u1", offset=1.5)
        with pytest.raises(TypeError, match="new_size must be an integer, not float"):
            m.resize(1.5)
