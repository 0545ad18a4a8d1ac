"""Any buffer: advice, locking and residency act on the pages under it, and never on memory that is not its own.

The risky cases run in a child interpreter, so a crash shows as a failed child, not a dead test run.
"""

from conftest import run_python


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
