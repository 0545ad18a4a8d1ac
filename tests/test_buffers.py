"""Any buffer: advice, locking and residency act on the pages under it, and never on memory that is not its own.

The risky cases run in a child interpreter, so a crash shows as a failed child, not a dead test run.
"""

import mmap

import numpy as np
import pytest

import mmio
from conftest import run_python

PAGE = mmio.PAGE_SIZE


def test_discarding_advice_on_a_heap_buffer_spares_the_bytes_around_it():
    # A view into the middle of a heap buffer: the pages it only partly covers hold other bytes (here the rest
    # of the buffer; in general the interpreter's heap). DONTNEED must drop only the pages wholly inside it.
    proc = run_python("""
        import numpy as np, mmio
        P = mmio.PAGE_SIZE
        buf = np.full(4 * P, 0xAB, np.uint8)
        view = buf[100:100 + 2 * P]
        mmio.advise(view, "dontneed", discard=True)
        addr = view.ctypes.data
        first = (-addr) % P + 100                      # the first page wholly inside the view, in buf
        assert first + P <= 100 + 2 * P
        outside = np.concatenate([buf[:100], buf[100 + 2 * P:]])
        print("outside kept", bool((outside == 0xAB).all()))
        print("inside dropped", bool((buf[first:first + P] == 0).all()))
        print("partial pages kept", bool((buf[100:first] == 0xAB).all()))
    """)
    assert proc.stdout.splitlines() == [
        "outside kept True", "inside dropped True", "partial pages kept True"]


def test_a_buffer_smaller_than_a_page_is_not_discarded_at_all():
    proc = run_python("""
        import numpy as np, mmio
        small = np.full(100, 7, np.uint8)
        neighbours = [np.full(100, 9, np.uint8) for _ in range(100)]
        mmio.advise(small, "dontneed", discard=True)
        mmio.advise(small, "free", discard=True)
        print(int(small.sum()), all(int(n.sum()) == 900 for n in neighbours))
    """)
    assert proc.stdout.split() == ["700", "True"]


def test_strides_that_reach_outside_any_address_space_are_refused():
    proc = run_python("""
        import numpy as np, mmio
        from numpy.lib.stride_tricks import as_strided
        base = np.zeros(4096, np.uint8)
        for strides in [(2 ** 62,), (-(2 ** 62),), (2 ** 61,)]:
            view = as_strided(base, (3,), strides)
            for call in (lambda: mmio.residency(view), lambda: mmio.advise(view, "dontneed", discard=True),
                         lambda: mmio.lock(view)):
                try:
                    call()
                    print("accepted")
                except ValueError as e:
                    print("ValueError", "outside any address space" in str(e))
    """)
    assert proc.stdout.splitlines() == ["ValueError True"] * 9


# ---- stdlib mmap, numpy.memmap and views ---------------------------------------------------------


@pytest.mark.not_under_sanitizer  # ASan makes mlock/munlock/mlockall no-ops
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


def test_buffer_calls_take_arrays_of_any_dtype_even_without_a_buffer_format():
    # bfloat16 (ml_dtypes) arrays cannot describe their items as a buffer format; the page calls need only
    # the memory's extent, so they work on them as on any array.
    ml_dtypes = pytest.importorskip("ml_dtypes")
    weights = np.ones(1 << 20, ml_dtypes.bfloat16)  # written: every page present
    assert mmio.residency(weights).fraction == 1.0
    assert mmio.residency(weights[::-3]).fraction == 1.0
    mmio.advise(weights, "hugepage")
    mmio.lock(weights)
    mmio.unlock(weights)
