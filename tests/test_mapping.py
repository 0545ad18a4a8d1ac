"""The Mapping type: lifetime, buffer protocol, arrays, indexing, advice, repr, resize, and the control methods
(protect, sync, lock) at and inside page boundaries, with the seed programs t_mprotect and t_mlock."""

import errno
import gc
import mmap
import os
import pickle
import signal
import threading

import numpy as np
import pytest

import mmio
from conftest import run_python, vm_flags

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


def test_close_refuses_while_exports_live():
    # The export check is what keeps every array and memoryview of a mapping valid: were close() to unmap under
    # them, reading them would crash. So it runs in a child, where a crash fails this test, not the test run.
    proc = run_python("""
        import gc, mmio
        m = mmio.anonymous(4 * mmio.PAGE_SIZE)
        m[:4] = b"live"
        view, arr = memoryview(m), m.array()[1:][::2]
        for holders in ("a memoryview and an array", "an array"):
            try:
                m.close()
                print("closed with", holders)
            except BufferError as e:
                print("refused with", holders, "|", e)
            print(bytes(view[:4]) if holders.startswith("a memoryview") else "", arr[:2].tobytes())
            view.release()
        del arr
        gc.collect()
        m.close()
        print("closed", m.closed)
        with mmio.anonymous(mmio.PAGE_SIZE) as m:
            m[0] = 7
            try:
                with m:
                    kept = m.array()
            except BufferError:
                print("exit refused", kept[0])
            del kept
    """)
    assert proc.stdout.splitlines() == [
        "refused with a memoryview and an array | cannot close a mapping with 2 live export(s) (arrays or "
        "memoryviews); delete them first", "b'live' b'ie'",
        "refused with an array | cannot close a mapping with 1 live export(s) (arrays or memoryviews); delete "
        "them first", " b'ie'", "closed True", "exit refused 7"]


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


def test_a_file_mapping_pickles_as_a_reference_and_plain_arrays_by_value(data_file):
    path, payload = data_file
    with mmio.open(path, offset=10, length=5000) as m:
        payload_bytes = pickle.dumps(m)
        assert len(payload_bytes) < 1024
        with pickle.loads(payload_bytes) as again:
            assert (again.path, again.offset, len(again), again.mode) == (str(path), 10, 5000, "r")
            assert again.address != m.address and again[:] == payload[10:5010]
        arr = m.array()
        copy = pickle.loads(pickle.dumps(arr))  # plain arrays pickle their data, as numpy's do
        assert type(copy) is np.ndarray and copy.tobytes() == arr.tobytes()
        del arr
    with pytest.raises(ValueError, match="closed"):
        pickle.dumps(m)
    with mmio.anonymous(PAGE) as anon, pytest.raises(TypeError, match="anonymous"):
        pickle.dumps(anon)
    with mmio.open(path, "c") as private, pytest.raises(TypeError, match="private"):
        pickle.dumps(private)


def test_copying_a_mapping_maps_the_same_file_range_again(data_file):
    import copy
    path, payload = data_file
    with mmio.open(path, "r+", offset=7, length=100) as m:
        for again in (copy.copy(m), copy.deepcopy(m)):
            assert (again.offset, len(again), again.mode) == (7, 100, "r+") and again.address != m.address
            again[0] = 255  # the same file: a write through one is seen through the other
            assert m[0] == 255
            again.close()
    with mmio.anonymous(PAGE) as anon, pytest.raises(TypeError, match="anonymous"):
        copy.copy(anon)


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
        with pytest.raises(TypeError, match="not writable"):  # ctypes' own check of a read-only buffer
            (ctypes.c_char * 4).from_buffer(m)  # (mmio's refusal of writable requests: the next test)


def test_writable_buffer_requests_on_a_read_only_mapping_are_refused(data_file):
    # Without mmio's refusal a writable request gets the read-only pages, and a writer then crashes the process
    # (io.BytesIO.readinto: SIGSEGV), so the requests run in a child: a crash fails this test, not the run.
    path, payload = data_file
    proc = run_python(f"""
        import ctypes, io, os, struct, mmio
        m = mmio.open({str(path)!r})
        other = mmio.open({str(path)!r}, offset=1)
        view = (ctypes.c_char * 256)()  # room for a Py_buffer
        get_buffer = ctypes.pythonapi.PyObject_GetBuffer
        get_buffer.argtypes = (ctypes.py_object, ctypes.c_void_p, ctypes.c_int)
        PyBUF_WRITABLE = 1
        fd = os.open({str(path)!r}, os.O_RDONLY)
        for name, call in [
            ("PyObject_GetBuffer", lambda: get_buffer(m, ctypes.addressof(view), PyBUF_WRITABLE)),
            ("Mapping.readinto", lambda: other.readinto(m)),
            ("os.readv", lambda: os.readv(fd, [m])),
            ("BytesIO.readinto", lambda: io.BytesIO(b"zz").readinto(m)),  # these three turn the refusal into
            ("FileIO.readinto", lambda: open({str(path)!r}, "rb", buffering=0).readinto(m)),  # a TypeError
            ("struct.pack_into", lambda: struct.pack_into("B", m, 0, 1)),
        ]:
            try:
                call()
                print(name, "accepted")
            except Exception as e:
                print(name, type(e).__name__, e if isinstance(e, BufferError) else "read-write bytes-like" in str(e))
        mv = memoryview(m)
        try:
            mv[0] = 1
            print("memoryview write accepted")
        except TypeError as e:
            print("memoryview write refused", mv.readonly)
        mv.release()
        print("unchanged", m[:] == open({str(path)!r}, "rb").read())
    """)
    assert proc.stdout.splitlines() == [
        "PyObject_GetBuffer BufferError mapping is read-only", "Mapping.readinto BufferError mapping is read-only",
        "os.readv BufferError mapping is read-only", "BytesIO.readinto TypeError True",
        "FileIO.readinto TypeError True", "struct.pack_into TypeError True",
        "memoryview write refused True", "unchanged True"]
    assert path.read_bytes() == payload


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


DATA = 3 * PAGE + 123  # the size of conftest's data_file


@pytest.mark.parametrize("dtype, shape, offset", [
    ("u1", (DATA + 1,), 0), ("u1", (DATA - 7 + 1,), 7), ("u1", (1, DATA - PAGE + 1), PAGE),
    ("<f8", ((DATA - 3) // 8,), (DATA + 1) % 8), ("V3", (2, (DATA + 1) // 6), (DATA + 1) % 6),
], ids=["u1", "u1-at-7", "2-D-at-a-page", "f8", "V3-2-D"])
def test_array_takes_an_exact_fit_and_refuses_one_byte_more(data_file, dtype, shape, offset):
    path, payload = data_file
    available = len(payload) - offset
    needs = np.dtype(dtype).itemsize * int(np.prod(shape))
    assert needs == available + 1  # the case is what it says
    with mmio.open(path) as m:
        exact = m.array("u1", shape=available, offset=offset)
        assert exact.tobytes() == payload[offset:]
        del exact
        with pytest.raises(ValueError, match=rf"needs {needs} bytes but the mapping has {available} bytes "
                                             rf"from offset {offset}$"):
            m.array(dtype, shape=shape, offset=offset)


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


def test_large_copies_stay_correct(tmp_path):
    n = 8 << 20
    data = np.random.default_rng(0).integers(0, 256, n, dtype=np.uint8).tobytes()
    with mmio.open(tmp_path / "big", "w+", size=n) as m:
        m[:] = data
        assert m[:] == data
        assert m[1::3] == data[1::3]


def _longest_stall_during(gaps, begin, end):
    """The longest part of [begin, end) that one of ``gaps`` (intervals a spinning thread did not run) covers."""
    return max([min(end, hi) - max(begin, lo) for lo, hi in gaps if hi > begin and lo < end], default=0.0)


@pytest.mark.parametrize("copy", ["write", "read", "strided read"])
def test_large_copies_release_the_gil(copy):
    # A thread spins in Python, noting every stretch it could not run. While the copy holds the GIL it cannot
    # run at all, so the copy would be one long stretch; with the GIL released it runs beside the copy. Best of
    # three, so one stretch of another process taking the CPU does not decide it.
    import time
    n = 256 << 20
    source = bytes(n)
    stop, running, gaps = threading.Event(), threading.Event(), []

    def spin():
        last = time.perf_counter()
        running.set()
        while not stop.is_set():
            now = time.perf_counter()
            if now - last > 0.002:
                gaps.append((last, now))
            last = now

    with mmio.anonymous(n, shared=False) as m:
        m.populate(write=True)
        action = {"write": lambda: m.__setitem__(slice(None), source), "read": lambda: m[:],
                  "strided read": lambda: m[::2]}[copy]
        thread = threading.Thread(target=spin)
        thread.start()
        running.wait()
        tries = []
        try:
            for _ in range(3):
                begin = time.perf_counter()
                action()
                end = time.perf_counter()
                tries.append((_longest_stall_during(gaps, begin, end), end - begin))
                if tries[-1][0] < tries[-1][1] / 2:
                    break
        finally:
            stop.set()
            thread.join()
    assert any(stall < took / 2 for stall, took in tries), f"(longest stall, copy time) of each try: {tries}"


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


# ---- resize --------------------------------------------------------------------------------------


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


def test_a_device_mapping_never_grows_past_what_it_maps():
    # /dev/zero has no size to check a growth against: growing would hand out pages that do not exist
    with mmio.open("/dev/zero", "r+", length=2 * PAGE) as m:
        with pytest.raises(ValueError, match="cannot grow a mapping of a device"):
            m.resize(4 * PAGE)
        assert len(m) == 2 * PAGE
        m.resize(PAGE)  # shrinking needs no size
        assert len(m) == PAGE and m[PAGE - 1] == 0


# ==== control methods: protect, sync, lock and every range method ====


def maps_line(address):
    for line in open("/proc/self/maps"):
        lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
        if lo <= address < hi:
            return line.split()
    raise LookupError(hex(address))


# ---- protect -------------------------------------------------------------------------------

def test_t_mprotect_sequence():
    """The seed's t_mprotect: a PROT_NONE shared anonymous region, then read/write."""
    m = mmio.anonymous(4 * PAGE)
    m.protect("none")
    assert maps_line(m.address)[1] == "---s"
    assert m.protection == mmio.Prot.NONE
    with pytest.raises(PermissionError, match="PROT_NONE"):
        m[0]
    with pytest.raises(TypeError, match="read-only"):
        m[0] = 1
    with pytest.raises(BufferError):
        memoryview(m)
    with pytest.raises(PermissionError):
        m.array()
    m.protect(mmio.Prot.READ | mmio.Prot.WRITE)
    assert maps_line(m.address)[1] == "rw-s"
    m[0] = 7
    assert m[0] == 7
    m.close()


@pytest.mark.parametrize("offset, length, pages", [
    (0, PAGE, {0}), (1, 1, {0}), (PAGE - 1, 2, {0, 1}), (PAGE, PAGE, {1}), (3 * PAGE + 5, None, {3}),
])
def test_protect_ranges_cover_the_pages_they_touch(offset, length, pages):
    with mmio.anonymous(4 * PAGE) as m:
        m.protect("r", offset, length)
        for page in range(4):
            perms = maps_line(m.address + page * PAGE)[1]
            assert perms == ("r--s" if page in pages else "rw-s"), page
            if page in pages:
                with pytest.raises(TypeError, match="protected read-only"):
                    m[page * PAGE] = 1
                assert m[page * PAGE] == 0
            else:
                m[page * PAGE] = 1
        assert m.readonly
        for page in range(4):  # an array is writable only over pages that are
            assert m.array("u1", offset=page * PAGE + 1, shape=PAGE - 1).flags.writeable is (page not in pages)
        m.protect("rw")
        assert not m.readonly and m.array().flags.writeable


def test_protect_partial_array_honours_the_pages_under_it():
    with mmio.anonymous(3 * PAGE) as m:
        m.protect("none", PAGE, PAGE)
        first = m.array("u1", shape=PAGE)
        assert first.flags.writeable
        with pytest.raises(PermissionError):
            m.array("u1", shape=PAGE + 1)
        with pytest.raises(PermissionError):
            m[PAGE - 1:PAGE + 1]
        assert m[2 * PAGE:2 * PAGE + 2] == b"\0\0"
        with pytest.raises(BufferError):
            memoryview(m)
        del first
        m.protect("rw")


def test_protect_refusals(data_file):
    path, _ = data_file
    with mmio.open(path) as m:
        with pytest.raises(PermissionError, match="cannot make a mode 'r' mapping writable") as info:
            m.protect("rw")
        assert info.value.errno == errno.EACCES and info.value.filename == str(path)
        m.protect("r")  # no change, fine
        with pytest.raises(ValueError, match="not a protection"):
            m.protect("rwz")
        with pytest.raises(ValueError, match="outside"):
            m.protect("r", PAGE, 10 * PAGE)
    with mmio.anonymous(2 * PAGE) as m:
        arr = m.array()
        with pytest.raises(BufferError, match="unsafe=True"):
            m.protect("r")
        with pytest.raises(BufferError):
            m.protect("none", PAGE)
        m.protect("rwx")  # adding a permission is always safe
        m.protect("r", unsafe=True)
        assert maps_line(m.address)[1] == "r--s"
        assert arr[0] == 0  # reading is still allowed
        m.protect("rw")
        del arr


def test_copy_on_write_may_become_writable_again(data_file):
    path, payload = data_file
    with mmio.open(path, "c") as m:
        m.protect("r")
        assert m.readonly
        m.protect("rw")
        m[0] = 99
    assert path.read_bytes() == payload


# ---- sync ----------------------------------------------------------------------------------

def test_sync_survives_sigkill(tmp_path):
    path = tmp_path / "durable.bin"
    proc = run_python(f"""
        import os, signal, mmio
        m = mmio.open({str(path)!r}, "w+", size=3 * mmio.PAGE_SIZE)
        m[mmio.PAGE_SIZE - 2:mmio.PAGE_SIZE + 3] = b"hello"
        m.sync(mmio.PAGE_SIZE - 2, 5)
        m[0:3] = b"abc"
        m.sync(wait=False)
        m.sync(invalidate=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """, check=False)
    assert proc.returncode == -signal.SIGKILL
    data = path.read_bytes()
    assert data[PAGE - 2:PAGE + 3] == b"hello" and data[:3] == b"abc"


def test_sync_writes_the_dirty_pages_back(data_file):
    # The kernel's flusher leaves a dirty page alone for dirty_expire_centisecs (30 s), so what is still dirty
    # right after the writes is dirty until sync() writes it (unless memory pressure starts writeback: then the
    # writes are redone, a few times at most).
    path, _ = data_file
    os.truncate(path, 4 * PAGE)
    with mmio.open(path, "r+") as m:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fdatasync(fd)  # what writing the fixture left dirty
        finally:
            os.close(fd)
        for attempt in range(5):
            m[PAGE - 2:PAGE + 2] = bytes([attempt]) * 4   # pages 0 and 1
            m[3 * PAGE] = attempt                       # page 3
            if mmio.cache_stat(path).dirty == 3:
                break
        assert mmio.cache_stat(path).dirty == 3
        m.sync(PAGE - 1, 2)                             # pages 0 and 1
        assert mmio.cache_stat(path, 0, 2 * PAGE)[1:3] == (0, 0)  # neither dirty nor being written
        m.sync()
        stat = mmio.cache_stat(path)
        assert (stat.cached, stat.dirty, stat.writeback) == (4, 0, 0)


def test_sync_ranges_and_errors(data_file):
    with mmio.open(data_file[0], "r+") as m:
        m.sync(PAGE - 1, 2)
        m.sync(len(m), 0)
        with pytest.raises(ValueError, match="outside"):
            m.sync(0, len(m) + 1)
    m.close()
    with pytest.raises(ValueError, match="closed"):
        m.sync()


# ---- lock ----------------------------------------------------------------------------------

@pytest.mark.not_under_sanitizer  # ASan makes mlock/munlock/mlockall no-ops
def test_t_mlock_sequence():
    """The seed's t_mlock: lock every 3rd group of 2 pages and see them resident."""
    with mmio.anonymous(24 * PAGE, shared=False) as m:
        assert m.residency().to_string(width=24) == "." * 24
        for start in range(0, 24, 3 * 2):
            m.lock(start * PAGE, 2 * PAGE)
        assert m.residency().to_string(width=24) == "**....**....**....**...."
        assert "lo" in vm_flags(m.address)
        m.unlock()
        assert "lo" not in vm_flags(m.address)


@pytest.mark.not_under_sanitizer  # ASan makes mlock/munlock/mlockall no-ops
def test_unlock_of_a_range_leaves_the_rest_locked():
    def locked_kb():
        return int(next(line for line in open("/proc/self/status") if line.startswith("VmLck:")).split()[1])

    with mmio.anonymous(8 * PAGE, shared=False) as m:
        m.advise("dontdump")  # a flag no neighbour has: the kernel cannot merge the region with another
        before = locked_kb()
        m.lock()
        assert locked_kb() - before == 8 * PAGE // 1024
        m.unlock(2 * PAGE + 1, PAGE)  # touches pages 2 and 3
        assert {i for i in range(8) if "lo" in vm_flags(m.address + i * PAGE)} == {0, 1, 4, 5, 6, 7}
        assert sum(r.locked for r in m.regions()) == 6 * PAGE
        assert locked_kb() - before == 6 * PAGE // 1024
        m.unlock()
        assert sum(r.locked for r in m.regions()) == 0 and locked_kb() == before


def test_lock_on_fault_locks_only_touched_pages():
    with mmio.anonymous(8 * PAGE, shared=False) as m:
        m.lock(on_fault=True)
        assert m.residency().resident == 0
        m[3 * PAGE] = 1
        assert m.residency().to_string() == "...*...."
        m.unlock()


@pytest.mark.not_under_sanitizer  # ASan makes mlock/munlock/mlockall no-ops
def test_lock_refused_by_rlimit_explains_itself(tmp_path):
    proc = run_python("""
        import os, resource, mmio
        resource.setrlimit(resource.RLIMIT_MEMLOCK, (64 * 1024, 64 * 1024))
        os.setgid(65534); os.setuid(65534)        # drop CAP_IPC_LOCK
        m = mmio.anonymous(1 << 20, shared=False)
        m.lock(0, 16 * 1024)                      # fits under the limit
        try:
            m.lock()
        except OSError as e:
            print(e.errno, "|", e)
        print(mmio.memlock_limit())
        try:
            mmio.lock_all()
        except OSError as e:
            print("all", e.errno)
    """)
    first, limit, all_line = proc.stdout.splitlines()
    err, message = first.split(" | ")
    assert int(err) in (errno.ENOMEM, errno.EAGAIN, errno.EPERM)
    assert "RLIMIT_MEMLOCK is 64.0 KiB" in message and "has 16.0 KiB locked already" in message
    assert "ulimit -l" in message and "asked to lock 1.0 MiB" in message
    assert limit == str(64 * 1024)
    assert all_line.startswith("all ")


# ---- every range method at and inside page boundaries ---------------------------------------------

RANGES = [(0, 1), (PAGE - 1, 2), (PAGE, PAGE), (2 * PAGE + 1, PAGE), (4 * PAGE - 1, 1), (4 * PAGE, 0)]


@pytest.mark.not_under_sanitizer  # ASan makes mlock/munlock/mlockall no-ops
@pytest.mark.parametrize("offset, length", RANGES)
def test_range_methods_touch_exactly_the_pages_of_the_range(offset, length):
    first, last = offset // PAGE, (offset + length - 1) // PAGE
    touched = set(range(first, last + 1)) if length else set()
    with mmio.anonymous(4 * PAGE, shared=False) as m:
        m.populate(offset, length, write=True)
        assert {i for i, p in enumerate(m.residency().pages) if p} == touched
        assert m.residency(offset, length).total == len(touched)
        m.lock(offset, length)
        locked = {i for i in range(4) if "lo" in vm_flags(m.address + i * PAGE)}
        assert locked == touched
        m.unlock(offset, length)
        m.advise("random", offset, length)
        advised = {i for i in range(4) if "rr" in vm_flags(m.address + i * PAGE)}
        assert advised == touched
        m.sync(offset, length)
        m.protect("r", offset, length)
        assert {i for i in range(4) if maps_line(m.address + i * PAGE)[1] == "r--p"} == touched


def test_advice_the_kernel_refuses_names_it(data_file, monkeypatch):
    with mmio.open(data_file[0]) as m:
        with pytest.raises(OSError, match="does not allow MADV_POPULATE_WRITE") as info:
            m.advise("populate_write")
        assert info.value.errno == errno.EINVAL
        monkeypatch.setattr(os, "uname", lambda: os.uname_result(("Linux", "h", "5.10.0-1", "", "x86_64")))
        with pytest.raises(OSError, match=r"MADV_POPULATE_WRITE needs Linux 5\.14 or newer"):
            m.advise("populate_write")


# ---- races, refusals and faults across the control methods ---------------------------------------


def test_protect_sees_a_writable_array_over_any_page():
    with mmio.anonymous(2 * PAGE) as m:
        m.protect("r", 0, PAGE)
        arr = m.array(offset=PAGE)
        assert arr.flags.writeable
        with pytest.raises(BufferError):
            m.protect("r")
        with pytest.raises(BufferError):
            m.protect("none")
        del arr
        m.protect("rw")


def test_protect_against_a_writer_thread_never_crashes():
    proc = run_python("""
        import threading, mmio
        m = mmio.anonymous(mmio.PAGE_SIZE)
        stop = False
        def writer():
            while not stop:
                try:
                    m[0] = 1
                except TypeError:
                    pass
        t = threading.Thread(target=writer); t.start()
        for _ in range(20000):
            m.protect("r"); m.protect("rw")
        stop = True; t.join()
        print("alive")
    """)
    assert proc.stdout.strip() == "alive"


def test_resize_against_a_reader_thread_never_crashes():
    proc = run_python("""
        import threading, mmio
        m = mmio.anonymous(64 << 20, shared=False)
        m.populate(write=True)
        stop = False
        def reader():
            while not stop:
                try:
                    m[123456]
                except (ValueError, IndexError):
                    pass
        t = threading.Thread(target=reader); t.start()
        for i in range(300):
            m.resize((64 << 20) + (i % 2) * (128 << 20))
        stop = True; t.join()
        print("alive")
    """)
    assert proc.stdout.strip() == "alive"


def test_resize_follows_the_file_not_the_path(public_dir):
    path = public_dir / "f.bin"
    path.write_bytes(b"a" * PAGE)
    other = public_dir / "g.bin"
    other.write_bytes(b"b" * 10 * PAGE)
    for mode in ("r", "c"):
        path.write_bytes(b"a" * PAGE)
        m = mmio.open(path, mode)
        os.replace(other, path)  # the name now means a different, bigger file
        with pytest.raises(ValueError, match="never grows"):
            m.resize(10 * PAGE)
        m.resize(0)
        m.resize(PAGE)
        assert m[:4] == b"aaaa"  # still the original file
        m.close()
        path.rename(other)


@pytest.mark.not_under_sanitizer  # ASan's shadow and allocator do not fit in RLIMIT_AS
def test_failed_resize_leaves_the_file_as_it_was(public_dir):
    path = public_dir / "grow.bin"
    path.write_bytes(bytes(PAGE))
    proc = run_python(f"""
        import resource, mmio
        m = mmio.open({str(path)!r}, "r+")
        resource.setrlimit(resource.RLIMIT_AS, (1 << 32, 1 << 32))
        try:
            m.resize(1 << 40)
        except OSError as e:
            print("refused", e.errno)
    """)
    assert proc.stdout.startswith("refused")
    assert path.stat().st_size == PAGE


def test_overlapping_strided_assignment():
    with mmio.anonymous(8) as m:
        m[:] = b"abcdefgh"
        m[::-1] = memoryview(m)
        assert m[:] == b"hgfedcba"
        m[::2] = memoryview(m)[:4]
        expected = bytearray(b"hgfedcba")
        expected[::2] = bytes(expected[:4])
        assert m[:] == bytes(expected)


def test_closed_mapping_properties_and_bad_flags():
    m = mmio.anonymous(PAGE)
    with pytest.raises(ValueError, match="not a protection"):
        m.protect(-1)
    with pytest.raises(ValueError, match="not a protection"):
        m.protect(64)
    with pytest.raises(TypeError):
        m.populate(threads=1.5)
    m.close()
    for name in ("readonly", "protection", "size", "address"):
        with pytest.raises(ValueError, match="closed"):
            getattr(m, name)
    mm = mmap.mmap(-1, PAGE)
    with pytest.raises(TypeError):
        mmio.advise(mm, "normal", 1.5)
    with pytest.raises(TypeError):
        mmio.lock(mm, "1")


@pytest.mark.not_under_sanitizer  # ASan makes mlock/munlock/mlockall no-ops
def test_lock_failure_inside_the_limit_does_not_blame_the_limit(tmp_path):
    proc = run_python(f"""
        import os, mmio
        P = mmio.PAGE_SIZE
        path = {str(tmp_path / "f.bin")!r}
        open(path, "wb").write(bytes(8 * P))
        m = mmio.open(path)
        os.truncate(path, P)
        try:
            m.lock()
        except OSError as e:
            print("RLIMIT_MEMLOCK is" in str(e), "cannot be backed" in str(e))
    """)
    assert proc.stdout.split() == ["False", "True"]


@pytest.mark.not_under_sanitizer  # ASan makes mlock/munlock/mlockall no-ops
def test_a_failed_lock_leaves_nothing_locked_and_names_its_cause(tmp_path):
    proc = run_python(f"""
        import os, mmio
        P = mmio.PAGE_SIZE
        def locked_kb():
            return int([l for l in open("/proc/self/status") if l.startswith("VmLck")][0].split()[1])
        path = {str(tmp_path / "f.bin")!r}
        open(path, "wb").write(bytes(8 * P))
        m = mmio.open(path)
        os.truncate(path, P)                       # pages past the first cannot be backed any more
        try:
            m.lock()
        except OSError as e:
            print("refused", e.errno)
        print("locked", locked_kb(), any("lo" in r.vm_flags for r in m.regions()))
        m.sync(invalidate=True)                    # EBUSY while a stray lock remained
        with mmio.anonymous(4 * P, shared=False) as a:
            a.protect("none", P, P)
            try:
                a.lock()
            except PermissionError as e:
                print("protected", "PROT_NONE" in str(e))
            print("locked", locked_kb())
    """)
    assert proc.stdout.splitlines() == ["refused 12", "locked 0 False", "protected True", "locked 0"]


def test_a_dontfork_mapping_is_closed_in_a_forked_child_not_a_crash():
    proc = run_python("""
        import os, mmio
        P = mmio.PAGE_SIZE
        m = mmio.anonymous(2 * P, shared=False)
        m[0] = 7
        m.advise("dontfork", 0, P)
        kept = mmio.anonymous(P)                    # no advice: inherited as usual
        kept[0] = 5
        pid = os.fork()
        if pid == 0:
            try:
                m[0]
                os._exit(3)
            except ValueError as e:
                ok = "DONTFORK" in str(e) and kept[0] == 5
                os._exit(0 if ok else 4)
        _, status = os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status), m[0])
        m.advise("dofork")
        pid = os.fork()
        if pid == 0:
            os._exit(0 if m[0] == 7 else 5)
        _, status = os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status))
    """)
    assert proc.stdout.split() == ["0", "7", "0"]


@pytest.mark.parametrize("shift", [1 << 20, -(1 << 20)])
def test_readinto_a_buffer_overlapping_the_mapping_with_threads(shift):
    n = 16 << 20
    m = mmio.anonymous(n)
    a = m.array()
    a[:] = (np.arange(n) % 251).astype(np.uint8)
    source, target = (slice(0, n - shift), slice(shift, n)) if shift > 0 else (slice(-shift, n), slice(0, n + shift))
    want = a[source].copy()
    assert m.readinto(memoryview(m)[target], source.start, threads=2) == len(want)
    assert np.array_equal(a[target], want)


def test_ctrl_c_stops_long_gil_free_work_between_pieces():
    # 16 GiB of untouched private memory read-faults onto the zero page: seconds of work, no memory.
    proc = run_python("""
        import os, signal, threading, time, mmio
        def interrupt_after(seconds):
            def fire():
                time.sleep(seconds)
                fire.at = time.perf_counter()
                os.kill(os.getpid(), signal.SIGINT)
            threading.Thread(target=fire, daemon=True).start()
            return fire
        m = mmio.anonymous(16 << 30, shared=False)
        m.advise("nohugepage")
        src, dst = mmio.anonymous(8 << 30, shared=False), mmio.anonymous(8 << 30, shared=False)
        for name, op in (("populate", m.populate), ("populate-threads", lambda: m.populate(threads=2)),
                         ("readinto", lambda: src.readinto(dst, threads=2))):
            fire = interrupt_after(0.2)
            try:
                op()
                print(name, "completed")
            except KeyboardInterrupt:
                print(name, "interrupted", time.perf_counter() - fire.at < 1.0)
            m.advise("dontneed", discard=True)
        print("guard sane", m[0], src[:3])
    """)
    assert proc.stdout.splitlines() == ["populate interrupted True", "populate-threads interrupted True",
                                        "readinto interrupted True", "guard sane 0 b'\\x00\\x00\\x00'"]


@pytest.mark.parametrize("kind", ["file", "anonymous"])
def test_a_private_mapping_regrown_within_a_page_forgets_what_the_shrink_cut(tmp_path, kind):
    path = tmp_path / "f.bin"
    path.write_bytes(b"f" * (2 * PAGE))
    m = mmio.open(path, "c") if kind == "file" else mmio.anonymous(2 * PAGE, shared=False)
    fresh = b"f" if kind == "file" else b"\0"
    m[:] = b"w" * (2 * PAGE)
    m.resize(PAGE + 100)            # the kernel keeps the page that holds the new end, private writes and all
    m.resize(2 * PAGE)
    assert m[PAGE + 99] == ord("w") and m[PAGE + 100:] == fresh * (PAGE - 100)
    m[:] = b"w" * (2 * PAGE)
    m.resize(PAGE + 100)
    m.protect("r")                  # and when the mapping cannot be written through
    m.resize(2 * PAGE)
    assert m[PAGE + 100:] == fresh * (PAGE - 100) and m.protection == mmio.Prot.READ
    assert path.read_bytes() == b"f" * (2 * PAGE)
