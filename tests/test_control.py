"""protect, sync, lock: ranges at and inside page boundaries, refusals, and the seed programs."""

import errno
import os
import signal

import pytest

import mmio
from conftest import run_python, vm_flags

PAGE = mmio.PAGE_SIZE


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
        assert m.readonly and not m.array("u1", offset=max(pages) * PAGE + PAGE if max(pages) < 3 else 0,
                                        shape=0).flags.writeable is None
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


def test_lock_on_fault_locks_only_touched_pages():
    with mmio.anonymous(8 * PAGE, shared=False) as m:
        m.lock(on_fault=True)
        assert m.residency().resident == 0
        m[3 * PAGE] = 1
        assert m.residency().to_string() == "...*...."
        m.unlock()


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


def test_lock_all_and_unlock_all():
    proc = run_python("""
        import mmio
        m = mmio.anonymous(4 * mmio.PAGE_SIZE, shared=False)
        mmio.lock_all(current=True, future=True, on_fault=True)
        flags = [l for l in open("/proc/self/status") if l.startswith("VmLck")]
        mmio.unlock_all()
        after = [l for l in open("/proc/self/status") if l.startswith("VmLck")]
        print(int(flags[0].split()[1]) > 0, int(after[0].split()[1]))
        try:
            mmio.lock_all(current=False)
        except ValueError:
            print("refused")
    """)
    assert proc.stdout.split() == ["True", "0", "refused"]


# ---- every range method at and inside page boundaries ---------------------------------------------

RANGES = [(0, 1), (PAGE - 1, 2), (PAGE, PAGE), (2 * PAGE + 1, PAGE), (4 * PAGE - 1, 1), (4 * PAGE, 0)]


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

def test_populate_over_prot_none_refuses_instead_of_crashing():
    proc = run_python("""
        import mmio
        P = mmio.PAGE_SIZE
        m = mmio.anonymous(2 * P)
        m.protect("none", 0, P)
        try:
            m.populate()
        except PermissionError as e:
            print("refused")
        m.populate(P, P)
        print("second page ok")
    """)
    assert proc.stdout.splitlines() == ["refused", "second page ok"]


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
    import mmap
    mm = mmap.mmap(-1, PAGE)
    with pytest.raises(TypeError):
        mmio.advise(mm, "normal", 1.5)
    with pytest.raises(TypeError):
        mmio.lock(mm, "1")


def test_unowned_sigbus_still_kills_and_guard_survives_a_kill_signal(tmp_path):
    proc = run_python(f"""
        import os, signal, mmio
        P = mmio.PAGE_SIZE
        path = {str(tmp_path / "f.bin")!r}
        open(path, "wb").write(bytes(4 * P))
        m = mmio.open(path)
        m[0]
        os.truncate(path, P)
        try:
            m[2 * P]
        except mmio.MappingFaultError:
            print("guarded", flush=True)
        os.kill(os.getpid(), signal.SIGBUS)   # the default action: the process dies
        print("survived")
    """, check=False)
    assert proc.stdout == "guarded\n" and proc.returncode == -signal.SIGBUS


def test_copy_from_another_truncated_mapping_is_guarded(tmp_path):
    proc = run_python(f"""
        import os, mmio
        P = mmio.PAGE_SIZE
        path = {str(tmp_path / "src.bin")!r}
        open(path, "wb").write(bytes(4 * P))
        src = mmio.open(path, "r+")
        dst = mmio.anonymous(4 * P)
        os.truncate(path, P)
        for action in (lambda: dst.__setitem__(slice(0, 4 * P), memoryview(src)),  # reads src
                       lambda: dst.readinto(memoryview(src))):                      # writes src
            try:
                action()
            except mmio.MappingFaultError as e:
                print("guarded", e.offset)
    """)
    assert proc.stdout.split() == ["guarded", "None", "guarded", "None"]


def test_fault_offset_is_the_first_bad_page(tmp_path):
    proc = run_python(f"""
        import os, mmio
        P = mmio.PAGE_SIZE
        path = {str(tmp_path / "f.bin")!r}
        open(path, "wb").write(bytes(1024 * P))
        m = mmio.open(path)
        os.truncate(path, P)
        for action in (lambda: m[:], lambda: m.readinto(bytearray(1024 * P), threads=2),
                       lambda: m[P - 10:P + 10]):
            try:
                action()
            except mmio.MappingFaultError as e:
                print(e.offset)
    """)
    assert proc.stdout.split() == [str(PAGE)] * 3


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
