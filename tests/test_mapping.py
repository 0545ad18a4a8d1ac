"""The Mapping object: lifetime, buffer protocol, arrays, indexing, advice, repr."""

import gc
import pickle
import threading

import numpy as np
import pytest

import mmio

PAGE = mmio.PAGE_SIZE


# ---- lifetime -----------------------------------------------------------------------------

def test_close_is_idempotent_and_use_after_close_raises(data_file):
    m = mmio.open(data_file[0])
    m.close()
    m.close()
    assert m.closed
    for use in (len, lambda m: m[0], lambda m: m[0:2], lambda m: m.array(), memoryview,
                lambda m: m.size, lambda m: m.address, lambda m: m.residency(),
                lambda m: m.advise("normal"), lambda m: m.__enter__()):
        with pytest.raises(ValueError, match="mapping is closed"):
            use(m)


def test_close_with_live_memoryview(data_file):
    m = mmio.open(data_file[0])
    view = memoryview(m)
    with pytest.raises(BufferError, match="1 live export"):
        m.close()
    assert view[0] == m[0]  # still mapped
    view.release()
    m.close()


def test_close_with_live_array_and_views_of_it(data_file):
    m = mmio.open(data_file[0])
    arr = m.array()
    view = arr[5:][::2]
    del arr
    with pytest.raises(BufferError):
        m.close()
    del view
    gc.collect()
    m.close()


def test_context_manager_exit_with_live_export_raises(data_file):
    with pytest.raises(BufferError):
        with mmio.open(data_file[0]) as m:
            kept = m.array()
    assert not m.closed
    del kept
    m.close()


def test_array_outlives_the_mapping_object(data_file):
    path, payload = data_file
    arr = mmio.open(path).array()
    gc.collect()
    assert arr.tobytes() == payload
    owner = arr.base.mapping
    assert not owner.closed
    assert type(arr) is np.ndarray


def test_memoryview_outlives_the_mapping_object(data_file):
    path, payload = data_file
    view = memoryview(mmio.open(path))
    gc.collect()
    assert view.tobytes() == payload


def test_releasing_base_chain_is_not_possible(data_file):
    """The array's base is not a memoryview a user could release under it."""
    arr = mmio.open(data_file[0]).array()
    assert isinstance(arr.base, mmio._mapping.MappingExport)
    assert not hasattr(arr.base, "release")


def test_unmapped_when_last_reference_goes(data_file):
    m = mmio.open(data_file[0])
    address = m.address
    lines = open("/proc/self/maps").read()
    assert f"{address & ~(PAGE - 1):x}-" in lines
    del m
    gc.collect()
    assert f"{address & ~(PAGE - 1):x}-" not in open("/proc/self/maps").read()


def test_not_picklable(data_file):
    with mmio.open(data_file[0]) as m:
        with pytest.raises(TypeError, match="pickle"):
            pickle.dumps(m)
        arr = m.array()
        copy = pickle.loads(pickle.dumps(arr))  # arrays pickle their data
        assert copy.tobytes() == arr.tobytes()
        del arr


# ---- buffer protocol -------------------------------------------------------------------------

def test_buffer_protocol(data_file):
    path, payload = data_file
    with mmio.open(path, "r+") as m:
        view = memoryview(m)
        assert (view.format, view.itemsize, view.ndim, view.shape, view.readonly) == (
            "B", 1, 1, (len(payload),), False)
        view[0] = 200
        assert m[0] == 200
        view.release()
        arr = np.frombuffer(m, dtype=np.uint8)
        assert arr.flags.writeable
        del arr
    with mmio.open(path) as m:
        with memoryview(m) as view:
            assert view.readonly
        import ctypes
        with pytest.raises((BufferError, TypeError)):
            (ctypes.c_char * 4).from_buffer(m)  # asks for a writable buffer


def test_export_count_with_threads(data_file):
    m = mmio.open(data_file[0])
    errors = []

    def worker():
        try:
            for _ in range(2000):
                with memoryview(m) as v:
                    v[0]
                m.array()
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    gc.collect()
    assert not errors
    m.close()  # every export was released


# ---- arrays ---------------------------------------------------------------------------------

def test_array_dtype_shape_offset(data_file):
    path, payload = data_file
    raw = np.frombuffer(payload, dtype=np.uint8)
    with mmio.open(path) as m:
        a = m.array("<u4", offset=3)
        assert a.shape == ((len(payload) - 3) // 4,)
        np.testing.assert_array_equal(a, raw[3:3 + 4 * a.size].view("<u4"))
        b = m.array("u1", shape=(4, 8), offset=PAGE)
        np.testing.assert_array_equal(b, raw[PAGE:PAGE + 32].reshape(4, 8))
        f = m.array("u1", shape=(4, 8), order="F")
        assert f.flags.f_contiguous
        np.testing.assert_array_equal(f, raw[:32].reshape(8, 4).T)
        s = m.array(np.dtype([("a", "u1"), ("b", "<u2")]), shape=5)
        assert s["b"][0] == int.from_bytes(payload[1:3], "little")
        sub = m.array("(2,)u1", shape=3)
        assert sub.shape == (3, 2)
        assert m.array("f8", shape=()).shape == ()
        del a, b, f, s, sub


@pytest.mark.parametrize("kwargs, error, message", [
    ({"dtype": object}, ValueError, "Python objects"),
    ({"dtype": [("o", object)]}, ValueError, "Python objects"),
    ({"dtype": "V0"}, ValueError, "no size"),
    ({"dtype": "not a dtype"}, TypeError, "not understood"),
    ({"shape": (10 ** 6,)}, ValueError, "needs 1000000 bytes"),
    ({"shape": (-1,)}, ValueError, "negative"),
    ({"shape": (2.5,)}, TypeError, "integers"),
    ({"offset": -1}, ValueError, "outside the mapping"),
    ({"offset": 10 ** 9}, ValueError, "outside the mapping"),
    ({"order": "K"}, ValueError, "order"),
])
def test_array_refusals(data_file, kwargs, error, message):
    with mmio.open(data_file[0]) as m:
        with pytest.raises(error, match=message):
            m.array(**kwargs)


def test_array_writable_iff_mapping(data_file):
    for mode, writable in (("r", False), ("r+", True), ("c", True)):
        with mmio.open(data_file[0], mode) as m:
            arr = m.array("u2")
            assert arr.flags.writeable is writable
            del arr


def test_array_refcounts_do_not_leak(data_file):
    import sys
    dt = np.dtype([("x", "<f4"), ("y", "<i2")])
    with mmio.open(data_file[0]) as m:
        before = sys.getrefcount(dt), sys.getrefcount(m)
        for _ in range(1000):
            m.array(dt)
        gc.collect()
        assert (sys.getrefcount(dt), sys.getrefcount(m)) == before


# ---- indexing ---------------------------------------------------------------------------------

def test_indexing(data_file):
    path, payload = data_file
    with mmio.open(path) as m:
        assert m[0] == payload[0]
        assert m[-1] == payload[-1]
        assert m[5:20] == payload[5:20]
        assert m[::-7] == payload[::-7]
        assert m[10:2:-2] == payload[10:2:-2]
        assert m[-100:10 ** 9] == payload[-100:]  # slices clamp like bytes
        assert m[:] == payload
        for bad in (len(payload), -len(payload) - 1, 10 ** 6):
            with pytest.raises(IndexError, match="out of range"):
                m[bad]
        with pytest.raises(TypeError):
            m["0"]
        with pytest.raises(IndexError):
            m[2 ** 80]
        with pytest.raises(ValueError, match="outside"):
            m.residency(offset=2 ** 80)
        with pytest.raises(ValueError, match="outside"):
            m.advise("normal", length=2 ** 80)


def test_slice_assignment(data_file):
    path, payload = data_file
    with mmio.open(path, "r+") as m:
        m[0] = 255
        m[-1] = 0
        m[1:4] = b"abc"
        m[10:13] = bytearray(b"xyz")
        m[20:28] = np.arange(2, dtype="<u4")
        m[100:110:2] = b"12345"
        m[200:210] = memoryview(m)[205:215]  # overlapping source
        expected = bytearray(payload)
        expected[0], expected[-1] = 255, 0
        expected[1:4], expected[10:13] = b"abc", b"xyz"
        expected[20:28] = np.arange(2, dtype="<u4").tobytes()
        expected[100:110:2] = b"12345"
        expected[200:210] = expected[205:215]
        assert m[:] == bytes(expected)
        with pytest.raises(ValueError, match="a mapping never changes size"):
            m[0:3] = b"ab"
        with pytest.raises(ValueError, match="range"):
            m[0] = 256
        with pytest.raises(TypeError):
            m[0] = b"a"
        with pytest.raises(TypeError):
            m[0:1] = "a"
        with pytest.raises(ValueError, match="contiguous"):
            m[0:2] = np.arange(4, dtype="u1")[::2]
        with pytest.raises(IndexError):
            m[len(payload)] = 1
    assert path.read_bytes() == bytes(expected)


def test_large_copies_release_the_gil_and_stay_correct(tmp_path):
    n = 8 << 20
    data = np.random.default_rng(0).integers(0, 256, n, dtype=np.uint8).tobytes()
    with mmio.open(tmp_path / "big", "w+", size=n) as m:
        m[:] = data
        assert m[:] == data
        assert m[1::3] == data[1::3]


# ---- advice and residency -----------------------------------------------------------------------

def test_advise_ranges_and_discard_rule(data_file):
    from conftest import vm_flags
    with mmio.open(data_file[0]) as m:
        m.advise("random", offset=PAGE + 5, length=10)
        m.advise(mmio.Advice.NORMAL)
        m.advise("DontNeed")  # shared file mapping: nothing is lost
        assert "rr" not in vm_flags(m.address)
        with pytest.raises(ValueError, match="not a Advice|choose one of"):
            m.advise("bogus")
        with pytest.raises(ValueError, match="outside the mapping"):
            m.advise("normal", offset=0, length=len(m) + 1)
        with pytest.raises(ValueError, match="REMOVE .*discard=True"):
            m.advise("remove")
    for shared in (True, False):
        with mmio.anonymous(2 * PAGE, shared=shared) as m:
            m[:] = b"\x01" * (2 * PAGE)
            with pytest.raises(ValueError, match="discard=True"):
                m.advise("dontneed")
            assert m[0] == 1
            m.advise("remove" if shared else "dontneed", discard=True, length=PAGE)
            assert m[0] == 0 and m[PAGE] == 1  # the first page's data is gone


def test_residency_of_anonymous_memory():
    with mmio.anonymous(8 * PAGE) as m:
        m[0] = 1
        m[5 * PAGE + 3] = 1
        r = m.residency()
        assert (r.resident, r.total, r.to_string()) == (2, 8, "*....*..")
        assert r.runs() == [(0, PAGE), (5 * PAGE, 6 * PAGE)]
        part = m.residency(offset=PAGE - 1, length=2)
        assert part.total == 2 and part.resident == 1
        assert part.runs() == [(PAGE - 1, PAGE)]
        assert part.resident_bytes == 1
        assert "1/2 pages" in repr(part)


def test_residency_to_string_groups_pages():
    pages = np.zeros(1000, bool)
    pages[:500] = True
    pages[990] = True
    r = mmio.Residency(pages, PAGE, 0, 1000 * PAGE)
    text = r.to_string(width=10, max_lines=1)
    assert text == "*****....+"
    assert len(r.to_string(width=64).splitlines()) == 16
    with pytest.raises(ValueError):
        r.to_string(width=0)


# ---- repr ---------------------------------------------------------------------------------------

def test_repr(data_file):
    path, payload = data_file
    m = mmio.open(path, "c", offset=7)
    assert repr(m) == f"<mmio.Mapping path={str(path)!r} mode='c' size={len(payload) - 7} offset=7>"
    m.close()
    assert repr(m) == f"<mmio.Mapping path={str(path)!r} mode='c' closed offset=7>"
    assert repr(mmio.anonymous(10)) == "<mmio.Mapping anonymous mode='r+' size=10>"


# ---- hostile arguments: callbacks that close the mapping, cycles, numpy scalars, huge numbers ------

class ClosesOnIndex:
    def __init__(self, mapping, value):
        self.mapping, self.value = mapping, value

    def __index__(self):
        self.mapping.close()
        return self.value


@pytest.mark.parametrize("use", [
    lambda m, k: m[k],
    lambda m, k: m[0:k],
    lambda m, k: m.__setitem__(slice(0, k), b"x" * 10),
    lambda m, k: m.__setitem__(k, 1),
    lambda m, k: m.array("u1", shape=(k,)),
    lambda m, k: m.array("u1", offset=k),
    lambda m, k: m.residency(k),
    lambda m, k: m.advise("normal", k),
    lambda m, k: m.protect("r", k),
    lambda m, k: m.protect("r", 0, k),
    lambda m, k: m.sync(k),
    lambda m, k: m.lock(0, k),
    lambda m, k: m.populate(k),
])
def test_python_code_that_closes_the_mapping_mid_call(use):
    m = mmio.anonymous(PAGE)
    with pytest.raises(ValueError, match="closed"):
        use(m, ClosesOnIndex(m, 10))


def test_export_is_returned_when_a_cycle_holding_it_is_collected():
    m = mmio.anonymous(PAGE)
    base = m.array().base
    cycle = [base]
    cycle.append(cycle)
    del base, cycle
    gc.collect()
    m.close()


def test_exception_in_with_block_is_not_masked_by_live_exports():
    with pytest.raises(KeyError):
        with mmio.anonymous(PAGE) as m:
            kept = m.array()
            raise KeyError("the real error")
    assert not m.closed
    del kept
    m.close()


def test_numpy_integers_as_bytes_and_indices():
    with mmio.anonymous(PAGE) as m:
        m[np.int64(3)] = np.uint8(200)
        assert m[np.int32(3)] == 200
        with pytest.raises(ValueError, match="range"):
            m[0] = np.int64(300)


@pytest.mark.parametrize("kwargs", [{"offset": 2 ** 70}, {"shape": (0, 2 ** 70)}])
def test_array_huge_numbers_are_value_errors(kwargs):
    with mmio.anonymous(PAGE) as m:
        with pytest.raises(ValueError):
            m.array(**kwargs)
