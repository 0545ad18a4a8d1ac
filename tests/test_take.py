"""mmio.take (gathers that read their pages ahead) and Mapping.prefetch(ranges=)."""

import time

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import mmio
from mmio._pages import coalesced
from mmio.gather import RANGE_LIMIT, _slice_ranges

P = mmio.PAGE_SIZE


@pytest.fixture
def saved(tmp_path):
    """``saved(array)``: the array written as a .npy and loaded back with mmio (a view of a mapping)."""
    def save(array, name="a.npy"):
        path = tmp_path / name
        np.save(path, array)
        return mmio.load(path)
    return save


def _cases():
    """(name, make the array from a loaded one) pairs: layouts a user can hand in."""
    return {
        "c": lambda a: a,
        "reversed": lambda a: a[::-1],
        "strided": lambda a: a[::2, ::-3],
        "transposed": lambda a: a.T,
        "column": lambda a: a[:, 5],
    }


INDICES = {
    "sorted": [0, 1, 2, 10],
    "reversed": [10, 2, 1, 0],
    "duplicates": [3, 3, 0, 3, 0],
    "negative": [-1, -2, 0, -17],
    "empty": [],
    "scalar": 7,
    "2-d": [[0, 1], [-1, 5]],
    "uint": np.array([4, 0, 8], dtype=np.uint32),
    "random": np.random.default_rng(1).integers(-17, 17, 100),
}


@pytest.mark.parametrize("layout", list(_cases()))
@pytest.mark.parametrize("pattern", list(INDICES))
@pytest.mark.parametrize("axis", [0, 1, -1, None])
@pytest.mark.parametrize("order", ["C", "F"])
def test_take_is_numpy_take(saved, layout, pattern, axis, order):
    source = np.asarray(np.arange(40 * 60, dtype="f8").reshape(40, 60), order=order)
    loaded, expected_source = _cases()[layout](saved(source)), _cases()[layout](source)
    if axis is not None and axis >= loaded.ndim:
        pytest.skip("no such axis")
    index = INDICES[pattern]
    size = expected_source.size if axis is None else expected_source.shape[axis]
    if np.size(index) and np.max(index) >= size:
        pytest.skip("index out of range for this layout")
    expected = np.take(expected_source, index, axis=axis)
    got = mmio.take(loaded, index, axis=axis)
    assert got.shape == expected.shape and got.dtype == expected.dtype
    np.testing.assert_array_equal(got, expected)
    if axis == 0 and np.ndim(index) == 1:
        np.testing.assert_array_equal(got, expected_source[np.asarray(index, dtype=np.intp)])


@settings(max_examples=60, deadline=None)
@given(rows=st.integers(1, 30), cols=st.integers(1, 30), fortran=st.booleans(), axis=st.sampled_from([0, 1, -2]),
       steps=st.tuples(st.sampled_from([1, 2, -1, -3]), st.sampled_from([1, 2, -1, -3])),
       picks=st.lists(st.integers(-1000, 1000), max_size=40))
def test_take_matches_numpy_for_any_view(tmp_path_factory, rows, cols, fortran, axis, steps, picks):
    source = np.asarray(np.arange(rows * cols, dtype="i4").reshape(rows, cols), order="F" if fortran else "C")
    path = tmp_path_factory.mktemp("take") / "a.npy"
    np.save(path, source)
    view, expected_source = (x[::steps[0], ::steps[1]] for x in (mmio.load(path), source))
    n = expected_source.shape[axis]
    index = [p % (2 * n) - n for p in picks]  # every value in [-n, n)
    np.testing.assert_array_equal(mmio.take(view, index, axis=axis), np.take(expected_source, index, axis=axis))


def test_zero_size_arrays(saved):
    empty_rows = saved(np.zeros((0, 3)), "rows.npy")
    assert mmio.take(empty_rows, [], axis=0).shape == (0, 3)
    no_cols = saved(np.zeros((4, 0)), "cols.npy")
    np.testing.assert_array_equal(mmio.take(no_cols, [3, -1, 0]), np.zeros((3, 0)))
    with pytest.raises(IndexError):
        mmio.take(empty_rows, [0])


def test_structured_and_3d(saved):
    source = np.zeros((5, 4, 3), dtype=[("a", "u1"), ("b", "f8")])
    source["b"] = np.arange(60).reshape(5, 4, 3)
    loaded = saved(source)
    for axis in (0, 1, 2):
        np.testing.assert_array_equal(mmio.take(loaded, [2, -1, 0, 2], axis=axis),
                                      np.take(source, [2, -1, 0, 2], axis=axis))


def test_out_of_range_raises_index_error_as_numpy_does(saved):
    loaded = saved(np.arange(10.0))
    for bad in ([10], [-11], [0, 3, 99], np.array([2**63], dtype=np.uint64)):
        with pytest.raises(IndexError) as expected:
            np.take(np.arange(10.0), bad)
        with pytest.raises(IndexError) as got:
            mmio.take(loaded, bad)
        assert str(got.value) == str(expected.value)
    with pytest.raises(np.exceptions.AxisError):
        mmio.take(loaded, [0], axis=1)


def test_arrays_not_mapped_are_numpy_take():
    plain = np.arange(24).reshape(4, 6)
    np.testing.assert_array_equal(mmio.take(plain, [3, -1], axis=1), plain[:, [3, -1]])
    assert mmio.take([1, 2, 3], [2, 0]).tolist() == [3, 1]


def _touched_pages(array, selected, axis):
    """The pages (of the mapping's address space) the elements of the selected slices lie in."""
    origin = array.__array_interface__["data"][0]
    offsets = np.full(array.shape, origin, dtype=np.int64)
    for k, (size, stride) in enumerate(zip(array.shape, array.strides)):
        shape = [1] * array.ndim
        shape[k] = size
        offsets = offsets + (np.arange(size, dtype=np.int64) * stride).reshape(shape)
    first = np.take(offsets, selected, axis=axis).ravel()
    last = first + array.itemsize - 1
    return set((first // P).tolist()) | set((last // P).tolist())


@pytest.mark.parametrize("shape,order,view,axis", [
    ((3000, 7), "C", np.s_[:, :], 0),
    ((3000, 7), "C", np.s_[:, :], 1),   # a column: one run per row, never the whole file
    ((3000, 7), "F", np.s_[:, :], 0),
    ((600, 1100), "C", np.s_[::-3, ::2], 1),
    ((50, 40, 30), "F", np.s_[::2, :, ::-1], 2),
])
def test_prefetched_pages_are_exactly_the_pages_touched(saved, shape, order, view, axis):
    array = saved(np.asarray(np.zeros(shape, "f8"), order=order))[view]
    mapping = mmio.sharing._mapping_under(array)
    selected = np.unique(np.random.default_rng(2).integers(0, array.shape[axis], 5))
    origin = array.__array_interface__["data"][0] - mapping.address
    ranges = _slice_ranges(array, axis, selected, origin)
    firsts, ends = coalesced(ranges[:, 0] + mapping.address, ranges.sum(axis=1) + mapping.address)
    asked = {p for f, e in zip(firsts.tolist(), ends.tolist()) for p in range(f // P, e // P)}
    assert asked == _touched_pages(array, selected, axis)
    assert len(ranges) <= RANGE_LIMIT


def test_coalesced_merges_sorts_and_dedupes():
    firsts, ends = coalesced([5 * P, 0, 10, 5 * P + 1, 9 * P], [5 * P + 2, 1, 20, 6 * P + 1, 9 * P])
    assert firsts.tolist() == [0, 5 * P] and ends.tolist() == [P, 7 * P]  # the empty range at 9 pages: nothing
    firsts, ends = coalesced([0, 3 * P], [1, 3 * P + 1], gap=2 * P)
    assert firsts.tolist() == [0] and ends.tolist() == [4 * P]
    assert [x.tolist() for x in coalesced([], [])] == [[], []]


def _evicted_mapping(tmp_path, pages):
    path = tmp_path / "cold.bin"
    path.write_bytes(np.random.default_rng(0).integers(0, 255, pages * P, dtype=np.uint8).tobytes())
    deadline = time.monotonic() + 10
    while mmio.evict(path, sync=True) and time.monotonic() < deadline:
        time.sleep(0.05)
    m = mmio.open(path)
    assert not m.residency().pages.any(), "the file did not leave the page cache"
    return m


def test_prefetch_ranges_reads_exactly_those_pages(tmp_path):
    pages = 2048
    m = _evicted_mapping(tmp_path, pages)
    asked = [1000, 5, 1500, 300, 301, 1000]          # any order, duplicates
    m.prefetch(ranges=[(p * P + 7, 100) for p in asked] + [(1800 * P - 1, 2)])  # one range across a page edge
    wanted = sorted(set(asked) | {1799, 1800})
    deadline = time.monotonic() + 20
    while not m.residency().pages[wanted].all():
        assert time.monotonic() < deadline, "the prefetched pages did not arrive"
        time.sleep(0.01)
    resident = np.flatnonzero(m.residency().pages)
    # The kernel may round a read to its folio size: allow pages near the ones asked, nothing far from them.
    far = [p for p in resident if min(abs(p - w) for w in wanted) > 16]
    assert far == []
    m.close()


def test_take_on_a_cold_file_reads_the_pages_it_gathers(tmp_path):
    m = _evicted_mapping(tmp_path, 1024)
    array = m.array("f8")
    index = np.array([700 * P // 8 + 3, 5, 400 * P // 8, 5])
    np.testing.assert_array_equal(mmio.take(array, index), np.frombuffer(m[:], "f8")[index])
    resident = np.flatnonzero(m.residency().pages)
    assert {0, 400, 700} <= set(resident.tolist())


def test_prefetch_ranges_errors():
    m = mmio.anonymous(4 * P)
    for bad in ([1, 2, 3], [(0.5, 1)], "ab", [[(0, 1)]]):
        with pytest.raises(TypeError, match="ranges"):
            m.prefetch(ranges=bad)
    for bad in ([(0, 4 * P + 1)], [(-1, 2)], [(3, -1)], [(4 * P + 1, 0)], np.array([[2**63, 1]], np.uint64)):
        with pytest.raises(ValueError, match="mapping"):
            m.prefetch(ranges=bad)
    with pytest.raises(TypeError, match="not both"):
        m.prefetch(8, ranges=[(0, 1)])
    m.prefetch(ranges=[])                      # nothing to do
    m.prefetch(ranges=[(4 * P, 0), (0, 4 * P)])  # the empty range at the end is inside
    m.prefetch(0, 10)                          # the old signature still works
    m.close()
    with pytest.raises(ValueError, match="closed"):
        m.prefetch(ranges=[(0, 1)])


def test_read_ahead_is_asked_only_for_ranges_with_pages_not_in_the_cache(tmp_path):
    # A request costs a system call even when there is nothing to read: ranges wholly in the page cache
    # are dropped before prefetching (all of them for a warm file).
    from conftest import evict, sparse_file
    from mmio.gather import _file_cache, _not_cached
    path = sparse_file(tmp_path / "s.bin", pages=64, pattern=(0, 1, 2, 10))
    page = mmio.PAGE_SIZE
    ranges = np.array([[0, 3 * page], [page, 10], [9 * page, 2 * page], [20 * page, 1], [10 * page + 5, 7]])
    with mmio.open(path) as m:
        assert _not_cached(_file_cache(m), ranges).tolist() == [[9 * page, 2 * page], [20 * page, 1]]
        mmio.touch(path)
        warm = _file_cache(m)
        assert warm.resident == warm.total and len(_not_cached(warm, ranges)) == 0
        evict(path)
        assert _not_cached(_file_cache(m), ranges).tolist() == ranges.tolist()
    with mmio.open(path, offset=page + 100, length=8 * page) as m:  # a mapping that starts mid-page
        evict(path)
        sparse_file(path, pages=64, pattern=(2,))
        # mapping bytes 0, page and 5 * page lie on file pages 1, 2 (the one cached) and 6-7
        assert _not_cached(_file_cache(m), np.array([[0, 10], [page, 10], [5 * page, page]])).tolist() == [
            [0, 10], [5 * page, page]]
    with mmio.open(path, "c") as m:  # private memory: asking would cost a mincore of all of it; not asked
        assert _file_cache(m) is None
