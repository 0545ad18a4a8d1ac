"""Mapped arrays and mappings across process boundaries by reference (mmio.share, load(share=True), Mapping
pickling): every view kind, staleness, modes, the transports, and what a receiver costs in descriptors,
mappings and private memory."""

import errno
import json
import os
import pickle
import struct

import ml_dtypes
import numpy as np
import pytest

import mmio
from conftest import run_python
from mmio import sharing

PROTOCOLS = (2, 3, 4, 5)
MiB = 1 << 20


@pytest.fixture(autouse=True)
def _forget_received_mappings():
    """What one test received stays out of the next one's process state (and its files' disk space)."""
    yield
    sharing._cache.clear()


def roundtrip(obj, protocol=pickle.HIGHEST_PROTOCOL):
    payload = pickle.dumps(obj, protocol=protocol)
    return payload, pickle.loads(payload)


def mapped_file(address):
    """The path of the /proc/self/maps entry holding ``address`` (``None``: anonymous memory)."""
    with open("/proc/self/maps") as f:
        for line in f:
            fields = line.split(maxsplit=5)
            lo, hi = (int(x, 16) for x in fields[0].split("-"))
            if lo <= address < hi:
                return fields[5].strip() if len(fields) > 5 else None
    raise LookupError(f"{address:#x} is not mapped")


def address(array):
    return array.__array_interface__["data"][0]


def touch(path, seconds=7):
    """Move the file's mtime by whole seconds: a change every kernel and file system records."""
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + seconds * 10**9))


# ---- the files and views of the round trips --------------------------------------------------------------

STRUCTURED = np.dtype([("a", "<i2"), ("b", ">f8"), ("c", "S3")])  # 13 bytes, unaligned fields


def _safetensors_tensors():
    return {"odd": np.arange(3, dtype=np.uint8),  # 3 bytes: what follows it is unaligned
            "y": np.arange(15, dtype=np.float32).reshape(3, 5),
            "z": np.arange(7, dtype=np.int16),
            "w": (np.arange(12, dtype=np.float32) / 4).astype(ml_dtypes.bfloat16).reshape(3, 4)}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from safetensors.numpy import save_file
    d = tmp_path_factory.mktemp("sharing-files")
    np.save(d / "c.npy", np.arange(7 * 11 * 5, dtype="<f8").reshape(7, 11, 5))
    np.save(d / "f.npy", np.asfortranarray(np.arange(5 * 9, dtype="<i4").reshape(5, 9)))
    np.save(d / "be.npy", np.arange(6 * 10, dtype=">f4").reshape(6, 10))
    structured = np.zeros(9, STRUCTURED)
    structured["a"], structured["b"], structured["c"] = np.arange(9), np.arange(9) / 2, b"xyz"
    np.save(d / "st.npy", structured)
    np.savez(d / "z.npz", a=np.arange(30.0).reshape(5, 6), b=np.arange(7, dtype=np.int16))
    save_file(_safetensors_tensors(), str(d / "t.safetensors"))
    return d


def _member(container, key):
    return container if key is None else container[key]


VIEWS = {
    "whole": lambda x: x,
    "T": lambda x: x.T,
    "reversed": lambda x: x[::-1],
    "strided": lambda x: x[::3, ::-7],
    "row": lambda x: x[2],
    "column": lambda x: x[:, 3],
    "0-d": lambda x: x[3, 4, ...],
    "empty": lambda x: x[:0],
    "field": lambda x: x["b"],  # a big-endian float field 2 bytes into 13-byte records: unaligned
}

CASES = [("c.npy", None, name) for name in VIEWS if name != "field"] + [
    ("f.npy", None, "whole"), ("f.npy", None, "T"), ("f.npy", None, "strided"), ("f.npy", None, "column"),
    ("be.npy", None, "whole"), ("be.npy", None, "reversed"), ("be.npy", None, "strided"),
    ("st.npy", None, "whole"), ("st.npy", None, "reversed"), ("st.npy", None, "field"),
    ("z.npz", "a", "whole"), ("z.npz", "a", "strided"), ("z.npz", "b", "reversed"),
    ("t.safetensors", "odd", "whole"), ("t.safetensors", "y", "T"), ("t.safetensors", "z", "reversed"),
    ("t.safetensors", "w", "whole"), ("t.safetensors", "w", "strided"),
]


def check_received(got, sent, kind, by_value=False):
    assert type(got) is kind
    assert (got.dtype, got.shape, got.strides) == (sent.dtype, sent.shape, sent.strides)
    assert got.tobytes() == sent.tobytes()
    assert by_value or not got.flags.writeable  # mode "r"
    if got.size:
        assert address(got) != address(sent)  # mapped again, by the receiver ...
        assert mapped_file(address(got)) == mapped_file(address(sent))  # ... from the sender's file


@pytest.mark.parametrize("name, key, view", CASES, ids=[f"{n}{'-' + k if k else ''}-{v}" for n, k, v in CASES])
def test_round_trip_keeps_the_view(files, name, key, view):
    plain = VIEWS[view](_member(mmio.load(files / name), key))
    shared = VIEWS[view](_member(mmio.load(files / name, share=True), key))
    assert type(shared) is mmio.SharedArray
    assert shared.tobytes() == plain.tobytes()
    for protocol in PROTOCOLS:
        payload, got = roundtrip(mmio.share(plain), protocol)
        assert len(payload) < 1024
        check_received(got, plain, np.ndarray)
        payload, got = roundtrip(shared, protocol)
        assert len(payload) < 1024
        check_received(got, shared, mmio.SharedArray)
        payload, again = roundtrip(got, protocol)  # a receiver sends on what it received, by reference too
        assert len(payload) < 1024  # (an empty view, which maps nothing, by value)
        check_received(again, shared, mmio.SharedArray, by_value=view == "empty")


def test_share_of_every_tensor_at_its_safetensors_offset(files):
    path = files / "t.safetensors"
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    tensors = mmio.load(path)
    expected = _safetensors_tensors()
    offsets = {}
    for name, array in tensors.items():
        offsets[name] = 8 + n + header[name]["data_offsets"][0]
        assert sharing.reference(array).offset == offsets[name]
        got = pickle.loads(pickle.dumps(mmio.share(array)))
        assert got.dtype == expected[name].dtype and got.tobytes() == expected[name].tobytes()
    assert any(offset % 8 for offset in offsets.values())  # some tensors start off an 8-byte boundary
    assert header["w"]["dtype"] == "BF16" and tensors["w"].dtype == np.dtype(ml_dtypes.bfloat16)
    got = pickle.loads(pickle.dumps(mmio.load(path, share=True)["w"].T))
    assert got.dtype == np.dtype(ml_dtypes.bfloat16)
    np.testing.assert_array_equal(got.astype(np.float32), expected["w"].T.astype(np.float32))


def test_shared_array_results_are_plain_and_its_copies_travel_by_value(files):
    a = mmio.load(files / "c.npy", share=True)
    assert type(a[1:]) is mmio.SharedArray and type(a.T) is mmio.SharedArray
    assert type(a * 2) is np.ndarray and type(np.add(a, 1)) is np.ndarray and type(a.sum(axis=0)) is np.ndarray
    assert type(a.sum()) is np.float64
    copy = a.copy()
    payload, got = roundtrip(copy)
    assert len(payload) > copy.nbytes  # the bytes themselves
    np.testing.assert_array_equal(got, a)
    assert type(got) is mmio.SharedArray and got.flags.writeable  # the receiver's own, sent on by value too
    assert len(pickle.dumps(got)) > copy.nbytes
    buffers = []  # protocol 5 sends the bytes out of band, as numpy does
    payload = pickle.dumps(copy, protocol=5, buffer_callback=buffers.append)
    assert len(payload) < 1024 and len(buffers) == 1
    np.testing.assert_array_equal(pickle.loads(payload, buffers=buffers), a)
    with pytest.raises(ValueError, match="copy"):
        mmio.share(copy)


def test_share_refuses_what_has_no_file_to_name(tmp_path, files):
    with pytest.raises(ValueError, match="not a view of an mmio file mapping"):
        mmio.share(np.arange(10))
    with pytest.raises(ValueError, match="not a view of an mmio file mapping"):
        mmio.share(mmio.load(files / "c.npy").copy())
    with pytest.raises(TypeError):
        mmio.share(b"bytes")
    anonymous = mmio.anonymous(mmio.PAGE_SIZE)
    with pytest.raises(ValueError, match="anonymous"):
        mmio.share(anonymous.array(np.uint8, (16,)))
    with pytest.raises(ValueError, match="validate"):
        mmio.share(mmio.load(files / "c.npy"), validate="sometimes")


# ---- staleness -----------------------------------------------------------------------------------------


def _fresh(path, n=1000):
    np.save(path, np.arange(float(n)))
    return path


def _change(path, how, tmp_path):
    if how == "touch":
        touch(path)
    elif how == "rewrite":  # same size, same inode, other bytes
        with open(path, "r+b") as f:
            f.seek(128 + 8 * 15)  # element 15
            f.write(b"\xff" * 8)
        touch(path)
    elif how == "truncate":
        os.truncate(path, 128 + 8 * 30)  # the header and 30 of the 1000 elements
    elif how == "extend":
        os.truncate(path, os.path.getsize(path) + 3 * mmio.PAGE_SIZE)
    elif how == "replace":
        _fresh(tmp_path / "other.npy")
        os.replace(tmp_path / "other.npy", path)
    elif how == "unlink":
        os.unlink(path)


CHANGES = ["touch", "rewrite", "truncate", "extend", "replace", "unlink"]


def assert_stale(payload, path):
    with pytest.raises(mmio.StaleFileError) as info:
        pickle.loads(payload)
    assert isinstance(info.value, OSError) and info.value.errno == errno.ESTALE
    assert info.value.filename == str(path) and str(path) in str(info.value)


@pytest.mark.parametrize("how", CHANGES)
def test_strict_reference_to_a_changed_file_is_stale(tmp_path, how):
    path = _fresh(tmp_path / "a.npy")
    a = mmio.load(path)
    payloads = [pickle.dumps(mmio.share(a[10:20])), pickle.dumps(mmio.load(path, share=True)[::-3]),
                pickle.dumps(mmio.open(path, "r"))]
    pickle.loads(payloads[0])  # this process has the file mapped, cached: that changes nothing
    _change(path, how, tmp_path)
    for payload in payloads:
        assert_stale(payload, path)


@pytest.mark.parametrize("how", CHANGES)
def test_inode_reference_refuses_another_file_or_a_view_past_its_end(tmp_path, how):
    """validate="inode" (the default for "r+"): the same inode covering the view's bytes is enough."""
    path = _fresh(tmp_path / "a.npy", 20_000)  # longer than a page of any size
    size = os.path.getsize(path)
    a = mmio.load(path, mode="r+")
    near, far = a[10:20], a[500:]  # truncation leaves the first, cuts the second
    payloads = {"near": pickle.dumps(mmio.share(near)), "far": pickle.dumps(mmio.share(far)),
                "read-only": pickle.dumps(mmio.share(mmio.load(path)[500:], validate="inode")),
                "mapping": pickle.dumps(mmio.open(path, "r+", offset=mmio.PAGE_SIZE))}
    _change(path, how, tmp_path)
    for what, payload in payloads.items():
        if how in ("replace", "unlink") or (how == "truncate" and what != "near"):
            assert_stale(payload, path)
            continue
        got = pickle.loads(payload)
        if isinstance(got, mmio.Mapping):
            assert (got.mode, got.offset, len(got)) == ("r+", mmio.PAGE_SIZE, size - mmio.PAGE_SIZE)
            got.close()
            continue
        expected = np.arange(20_000.0)[10:20] if what == "near" else np.arange(20_000.0)[500:]
        if how == "rewrite" and what == "near":
            expected[15 - 10] = np.frombuffer(b"\xff" * 8)[0]  # the receiver sees the new bytes
        np.testing.assert_array_equal(got, expected)


def test_validate_none_accepts_a_touched_file_and_inode_accepts_a_touch(tmp_path):
    path = _fresh(tmp_path / "a.npy")
    a = mmio.load(path)
    strict, default, inode, none = (pickle.dumps(mmio.share(a[::-1], validate=v))
                                    for v in ("strict", None, "inode", "none"))
    touch(path)
    assert_stale(strict, path)
    assert_stale(default, path)  # "strict" is the default for "r"
    np.testing.assert_array_equal(pickle.loads(inode), np.arange(1000.0)[::-1])
    np.testing.assert_array_equal(pickle.loads(none), np.arange(1000.0)[::-1])


def test_receiver_remaps_a_file_that_grew(tmp_path):
    """Its cached mapping of the shorter file does not serve a view of the longer one."""
    path = _fresh(tmp_path / "a.npy")
    old = pickle.loads(pickle.dumps(mmio.share(mmio.load(path, mode="r+"))))  # cached now
    with open(path, "r+b") as f:
        f.seek(0, os.SEEK_END)
        f.write(np.arange(1000.0, 2000.0).tobytes())
    grown = mmio.open_array(path, np.float64, (2000,), offset=128, mode="r+")
    got = pickle.loads(pickle.dumps(mmio.share(grown[1500:])))  # same file, same mode: the cached one's key
    np.testing.assert_array_equal(got, np.arange(1500.0, 2000.0))
    np.testing.assert_array_equal(old, np.arange(1000.0))


@pytest.mark.parametrize("how", ["truncate", "extend", "replace", "unlink"])
def test_sender_refuses_a_file_that_changed_under_it(tmp_path, how):
    path = _fresh(tmp_path / "a.npy")
    a = mmio.load(path, share=True)
    m = mmio.open(path, "r")
    _change(path, how, tmp_path)
    for send in (lambda: mmio.share(a[1:]), lambda: pickle.dumps(a), lambda: pickle.dumps(m)):
        with pytest.raises(mmio.StaleFileError) as info:
            send()
        assert info.value.errno == errno.ESTALE
        assert os.path.basename(path) in str(info.value)
        assert ("deleted" if how in ("replace", "unlink") else "changed size") in str(info.value)


def test_sender_sends_a_touched_file_as_it_is_now(tmp_path):
    """A same-size change is in the sender's own view too: what it sends names the file as it is now."""
    path = _fresh(tmp_path / "a.npy")
    a = mmio.load(path)
    touch(path)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(mmio.share(a))), np.arange(1000.0))


# ---- modes ---------------------------------------------------------------------------------------------


def test_read_only_arrays_arrive_read_only(tmp_path):
    path = _fresh(tmp_path / "a.npy")
    for got in (pickle.loads(pickle.dumps(mmio.share(mmio.load(path)))),
                pickle.loads(pickle.dumps(mmio.load(path, share=True)))):
        assert not got.flags.writeable
        with pytest.raises(ValueError, match="read-only"):
            got[0] = 1
        with pytest.raises(ValueError):
            got.flags.writeable = True


def test_read_write_receiver_writes_reach_the_sender(tmp_path):
    path = _fresh(tmp_path / "a.npy")
    a = mmio.load(path, mode="r+", share=True)
    (tmp_path / "payload").write_bytes(pickle.dumps({"plain": mmio.share(a[::-2]), "shared": a[:10],
                                                     "empty": a[:0], "mapping": mmio.open(path, "r+")}))
    run_python(f"""
        import pickle, numpy as np, mmio
        with open({str(tmp_path / "payload")!r}, "rb") as f:
            got = pickle.load(f)
        assert got["plain"].flags.writeable and type(got["plain"]) is np.ndarray
        assert got["shared"].flags.writeable and type(got["shared"]) is mmio.SharedArray
        assert got["empty"].flags.writeable and got["empty"].shape == (0,)
        got["plain"][:3] = -1       # elements 999, 997, 995
        got["shared"][:2] = -2      # elements 0, 1
        got["mapping"][128 + 8 * 5:128 + 8 * 6] = np.float64(-3).tobytes()  # element 5
        got["mapping"].sync()
    """)
    expected = np.arange(1000.0)
    expected[[999, 997, 995]], expected[[0, 1]], expected[5] = -1, -2, -3
    np.testing.assert_array_equal(a, expected)  # the sender's own mapping
    np.testing.assert_array_equal(np.load(path), expected)  # and the file


def test_w_plus_mapping_travels_as_r_plus_and_keeps_the_file(tmp_path):
    path = tmp_path / "w.bin"
    w = mmio.open(path, "w+", size=3 * mmio.PAGE_SIZE)
    w[:5] = b"hello"
    payload, got = roundtrip(w)
    assert len(payload) < 1024
    assert got.mode == "r+" and len(got) == 3 * mmio.PAGE_SIZE and os.path.getsize(path) == 3 * mmio.PAGE_SIZE
    assert bytes(got[:5]) == b"hello"
    got[5:11] = b" world"
    assert bytes(w[:11]) == b"hello world"
    got.close()
    (tmp_path / "payload").write_bytes(payload)
    run_python(f"""
        import os, pickle
        with open({str(tmp_path / "payload")!r}, "rb") as f:
            m = pickle.load(f)
        assert m.mode == "r+" and bytes(m[:11]) == b"hello world", (m.mode, bytes(m[:11]))
        m[-3:] = b"end"
    """)
    assert bytes(w[-3:]) == b"end" and bytes(w[:11]) == b"hello world"
    assert os.path.getsize(path) == 3 * mmio.PAGE_SIZE


def test_created_arrays_travel_read_write(tmp_path):
    created = mmio.create(tmp_path / "c.npy", (4, 6), "<f4")
    created[...] = 5
    got = pickle.loads(pickle.dumps(mmio.share(created.T)))
    assert got.flags.writeable and got.strides == created.T.strides
    got[0, 0] = 9
    assert created[0, 0] == 9


def test_copy_on_write_and_other_mappings_refused(tmp_path):
    path = _fresh(tmp_path / "a.npy")
    private = mmio.load(path, mode="c")
    with pytest.raises(ValueError, match="private"):
        mmio.share(private)
    with pytest.raises(ValueError, match="private"):
        mmio.share(private[::2])
    with pytest.raises(ValueError, match="'c'"):
        mmio.load(path, mode="c", share=True)
    with pytest.raises(TypeError, match="private"):
        pickle.dumps(mmio.open(path, "c"))
    with pytest.raises(TypeError, match="anonymous"):
        pickle.dumps(mmio.anonymous(mmio.PAGE_SIZE))
    fd = os.open(path, os.O_RDONLY)
    try:
        with pytest.raises(TypeError, match="bare descriptor"):
            pickle.dumps(mmio.open(fd, "r"))
    finally:
        os.close(fd)
    closed = mmio.open(path, "r")
    closed.close()
    with pytest.raises(ValueError, match="closed"):
        pickle.dumps(closed)


# ---- transports ----------------------------------------------------------------------------------------

TASKS = '''
import glob, os, pickle, tempfile

import numpy as np


def mapped_file(address):
    with open("/proc/self/maps") as f:
        for line in f:
            fields = line.split(maxsplit=5)
            lo, hi = (int(x, 16) for x in fields[0].split("-"))
            if lo <= address < hi:
                return fields[5].strip() if len(fields) > 5 else None


def joblib_dumps(pid):
    """The files joblib's memmapping reducer dumped for process ``pid`` (its folders are named after it)."""
    folders = [folder for root in ("/dev/shm", tempfile.gettempdir())
               for folder in glob.glob(os.path.join(root, f"joblib_memmapping_folder_{pid}_*"))]
    return sum(len(files) for folder in folders for _, _, files in os.walk(folder))


def inspect(array, parent=None):
    """What a worker received: its sum, and whether it is a view of the sender's file."""
    return {"sum": float(array.sum()), "type": type(array).__name__, "resent": len(pickle.dumps(array)),
            "file": mapped_file(array.__array_interface__["data"][0]), "pid": os.getpid(),
            "joblib_dumps": None if parent is None else joblib_dumps(parent)}
'''

TRANSPORT_CHILD = '''
import json, os, pickle, sys
sys.path.insert(0, {tmp!r})
import numpy as np
import mmio
from mmio import sharing
import tasks

how = {how!r}
a = mmio.load({path!r}, share=True)
arrays = [a, a[::-1], a[1::3]]
if how in ("fork", "forkserver", "spawn"):
    import multiprocessing
    pickle.loads(pickle.dumps(a[:10]))
    assert len(sharing._cache) == 1  # what a forked worker inherits and must not use
    with multiprocessing.get_context(how).Pool(2) as pool:
        results = pool.map(tasks.inspect, arrays, chunksize=1)
elif how == "futures":
    from concurrent.futures import ProcessPoolExecutor
    with ProcessPoolExecutor(max_workers=2) as executor:
        results = list(executor.map(tasks.inspect, arrays))
elif how == "joblib":
    from joblib import Parallel, delayed
    parallel = Parallel(n_jobs=2, backend="loky")  # max_nbytes: the default, "1M"
    results = parallel(delayed(tasks.inspect)(x, os.getpid()) for x in arrays)
    # the control: the same array's bytes, which joblib dumps to its memmapping folder and maps in the worker
    results += parallel(delayed(tasks.inspect)(np.array(x), os.getpid()) for x in arrays[:1])
print(json.dumps({{"results": results, "pid": os.getpid()}}))
'''


@pytest.fixture(scope="module")
def big_file(tmp_path_factory):
    """16 MiB of float64 whose sums, in any order, are exact."""
    path = tmp_path_factory.mktemp("sharing-big") / "big.npy"
    np.save(path, np.arange(float(2 * MiB)))
    return path


@pytest.mark.parametrize("how", ["fork", "forkserver", "spawn", "futures", "joblib"])
def test_transports_send_references(tmp_path, big_file, how):
    (tmp_path / "tasks.py").write_text(TASKS)
    proc = run_python(TRANSPORT_CHILD.format(tmp=str(tmp_path), how=how, path=str(big_file)))
    printed = json.loads(proc.stdout.splitlines()[-1])
    results = printed["results"]
    assert printed["pid"] not in {result["pid"] for result in results}  # workers, other processes
    expected = np.arange(float(2 * MiB))
    for result, sent in zip(results, [expected, expected[::-1], expected[1::3]]):
        assert result["sum"] == sent.sum()
        assert result["type"] == "SharedArray"
        assert result["file"] == str(big_file)  # the worker's array is a view of the file, mapped there ...
        assert result["resent"] < 1024  # ... which it sends on by reference
        if how == "joblib":
            assert result["joblib_dumps"] == 0  # joblib dumped nothing
    if how == "joblib":
        control = results[3]
        assert control["sum"] == expected.sum() and control["type"] == "memmap"
        assert control["joblib_dumps"] >= 1 and "joblib_memmapping_folder_" in control["file"]


DISTRIBUTED_CHILD = '''
import json, os, sys
sys.path.insert(0, {tmp!r})
import mmio
import tasks
from distributed import Client, LocalCluster

a = mmio.load({path!r}, share=True)
with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \\
        Client(cluster) as client:
    results = {{"submit": [client.submit(tasks.inspect, x, pure=False).result() for x in (a, a[::-1])],
               "scatter": [client.submit(tasks.inspect, client.scatter(a)).result()]}}
print(json.dumps(results))
'''


@pytest.fixture(scope="module")
def distributed_results(tmp_path_factory, big_file):
    """What two dask.distributed process workers received, as arguments and as scattered data."""
    pytest.importorskip("distributed")
    tmp = tmp_path_factory.mktemp("sharing-distributed")
    (tmp / "tasks.py").write_text(TASKS)
    proc = run_python(DISTRIBUTED_CHILD.format(tmp=str(tmp), path=str(big_file)))
    return json.loads(proc.stdout.splitlines()[-1])


def _received_by_reference(result, path):
    assert result["sum"] == np.arange(float(2 * MiB)).sum()
    assert (result["type"], result["file"]) == ("SharedArray", str(path))
    assert result["resent"] < 1024


def test_distributed_task_arguments_are_references(distributed_results, big_file):
    for result in distributed_results["submit"]:
        _received_by_reference(result, big_file)


def test_distributed_scattered_data_is_a_reference(distributed_results, big_file):
    _received_by_reference(distributed_results["scatter"][0], big_file)


def test_forked_child_forgets_the_inherited_mappings(tmp_path):
    path = _fresh(tmp_path / "a.npy")
    run_python(f"""
        import os, pickle, mmio
        from mmio import sharing
        payload = pickle.dumps(mmio.share(mmio.load({str(path)!r})[::-1]))
        before = pickle.loads(payload)
        assert len(sharing._cache) == 1
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                assert len(sharing._cache) == 0
                got = pickle.loads(payload)
                assert got[0] == 999.0 and len(sharing._cache) == 1
                code = 0
            finally:
                os._exit(code)
        assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
        assert len(sharing._cache) == 1 and before[0] == 999.0
    """)


# ---- what a receiver costs -----------------------------------------------------------------------------

PROC_HELPERS = '''
import gc, os, pickle
import numpy as np
import mmio
from mmio import sharing


def fds():
    return len(os.listdir("/proc/self/fd"))


def vmas():
    with open("/proc/self/maps") as f:
        return sum(1 for _ in f)


def mapped(prefix):
    """The paths, one per mapping, of the files under ``prefix`` this process maps."""
    with open("/proc/self/maps") as f:
        return [line.split(maxsplit=5)[5].strip() for line in f
                if len(line.split(maxsplit=5)) > 5 and line.split(maxsplit=5)[5].startswith(prefix)]


def descriptors(prefix):
    """The descriptors open on files under ``prefix``."""
    found = []
    for name in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{name}").startswith(prefix):
                found.append(int(name))
        except FileNotFoundError:  # listdir's own
            pass
    return found


def status(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
'''


@pytest.mark.not_under_sanitizer  # ASan's allocator maps memory of its own: the mapping count moves
def test_thousand_unpickles_cost_no_descriptors_or_mappings(tmp_path):
    path = _fresh(tmp_path / "a.npy", 100_000)
    run_python(f"""
        path = {str(path)!r}
        a = mmio.load(path)
        payloads = [pickle.dumps(mmio.share(a[::-3])), pickle.dumps(mmio.load(path, share=True)[7:]),
                    pickle.dumps(mmio.share(a.reshape(400, 250).T))]
        del a
        gc.collect()
        for payload in payloads:
            pickle.loads(payload)
        gc.collect()
        before = fds(), vmas(), mapped(path), descriptors(path)
        assert len(before[2]) == 1 and len(before[3]) == 1, before  # the cached mapping, only
        for _ in range(1000):
            for payload in payloads:
                got = pickle.loads(payload)
        del got
        gc.collect()
        after = fds(), vmas(), mapped(path), descriptors(path)
        assert after == before, (before, after)
        kept = [pickle.loads(payload) for _ in range(1000) for payload in payloads]  # all alive at once
        assert (mapped(path), descriptors(path)) == before[2:] and fds() == before[0]
        roots = set()
        for x in kept:
            while isinstance(x.base, np.ndarray):
                x = x.base
            roots.add(id(x))
        assert len(roots) == 1  # all views of one array of the file's bytes
    """, setup=PROC_HELPERS)


def test_receive_cache_bound_over_many_files(tmp_path):
    for i in range(200):
        np.save(tmp_path / f"{i:03}.npy", np.full(1000, float(i)))
    run_python(f"""
        directory = {str(tmp_path)!r} + "/"
        names = sorted(name for name in os.listdir(directory) if name.endswith(".npy"))
        payloads = [pickle.dumps(mmio.share(mmio.load(directory + name)[::2])) for name in names]
        gc.collect()
        assert mapped(directory) == [] and descriptors(directory) == []  # the senders' arrays are gone
        for i, payload in enumerate(payloads):
            got = pickle.loads(payload)
            assert got[0] == i
            del got
        gc.collect()
        limit = sharing.CACHE_FILES
        assert len(sharing._cache) == limit
        assert sorted(mapped(directory)) == [directory + name for name in names[-limit:]]  # the latest ones
        assert len(descriptors(directory)) == limit
        # the least recently used file comes back, and the next goes
        assert pickle.loads(payloads[0])[0] == 0
        assert len(mapped(directory)) == limit and directory + names[-limit] not in mapped(directory)
    """, setup=PROC_HELPERS)


def test_worker_reads_a_shared_array_with_no_private_copy(tmp_path):
    path = tmp_path / "big.npy"
    n = 64 * MiB // 8
    np.save(path, np.arange(float(n)))
    np.save(tmp_path / "small.npy", np.arange(10.0))
    (tmp_path / "payloads").write_bytes(pickle.dumps([mmio.load(tmp_path / "small.npy", share=True),
                                                      mmio.load(path, share=True)]))
    proc = run_python(f"""
        with open({str(tmp_path / "payloads")!r}, "rb") as f:
            raw = f.read()
        assert len(raw) < 2048
        pickle.loads(raw)[0].sum()  # every code path the measured one takes, once
        anon, file = status("RssAnon"), status("RssFile")
        small, big = pickle.loads(raw)
        total = float(big.sum())
        print(total, status("RssAnon") - anon, status("RssFile") - file)
    """, setup=PROC_HELPERS)
    total, anon, file = proc.stdout.split()
    assert float(total) == np.arange(float(n)).sum()
    assert int(anon) < 0.05 * 64 * MiB  # private memory: the receiver did not copy the bytes
    assert int(file) > 0.9 * 64 * MiB  # it read them, through its mapping of the file


# ---- dask's tokenizer ----------------------------------------------------------------------------------

TOKEN_HELPERS = '''
import os, pickle
import numpy as np


def resident(array):
    """Bytes of ``array``'s mapping this process has touched (Rss of its /proc/self/smaps entry)."""
    address = array.__array_interface__["data"][0]
    with open("/proc/self/smaps") as f:
        inside = False
        for line in f:
            head = line.split()[0]
            if "-" in head and not head.endswith(":"):
                lo, hi = (int(x, 16) for x in head.split("-"))
                inside = lo <= address < hi
            elif inside and head == "Rss:":
                return int(line.split()[1]) * 1024
'''


def test_dask_tokenizes_shared_arrays_by_file_without_reading_them(tmp_path, big_file):
    path = tmp_path / "t.npy"
    np.save(path, np.arange(float(2 * MiB)))
    proc = run_python(f"""
        import dask.base  # before loading: load(share=True) teaches dask's tokenizer
        import mmio
        from dask.base import tokenize
        a = mmio.load({str(path)!r}, share=True)
        token = tokenize(a)
        assert resident(a) == 0, resident(a)  # not a byte read
        assert tokenize(mmio.load({str(path)!r}, share=True)) == token  # stable between loads
        assert tokenize(pickle.loads(pickle.dumps(a))) == token  # and on a receiver
        others = {{tokenize(a[1:]), tokenize(a[::-1]), tokenize(a.reshape(1024, -1).T), tokenize(a[:0]),
                  tokenize(mmio.load({str(big_file)!r}, share=True)),
                  tokenize(a.view([("x", "<i4"), ("y", "<f4")])), tokenize(a.view([("y", "<f4"), ("x", "<i4")]))}}
        assert len(others) == 7 and token not in others
        assert resident(a) == 0
        assert tokenize(np.asarray(a)) != token  # a plain view is hashed by its bytes, as dask does
        print(token)
    """, setup=TOKEN_HELPERS)
    token = proc.stdout.split()[-1]
    run_python(f"""
        import mmio
        a = mmio.load({str(path)!r}, share=True)  # before dask is imported: register_dask() is needed
        import dask.base
        mmio.sharing.register_dask()
        assert dask.base.tokenize(a) == {token!r}  # the same in another process
        assert resident(a) == 0
        st = os.stat({str(path)!r})
        os.utime({str(path)!r}, ns=(st.st_atime_ns, st.st_mtime_ns + 7 * 10**9))
        assert dask.base.tokenize(mmio.load({str(path)!r}, share=True)) != {token!r}  # the file changed
        assert dask.base.tokenize(a) != {token!r}  # (so did what the old array views)
        assert resident(a) == 0
    """, setup=TOKEN_HELPERS)


def test_receivers_unpickling_on_many_threads_share_a_bounded_cache(tmp_path, monkeypatch):
    # A dask worker unpickles on several threads at once: the cache stays consistent and bounded.
    import sys
    import threading
    monkeypatch.setattr(sharing, "CACHE_FILES", 4)
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # hand the GIL over often: more interleavings
    payloads = []
    for i in range(12):
        path = tmp_path / f"f{i}.npy"
        np.save(path, np.full(1000, float(i)))
        payloads.append(pickle.dumps(mmio.share(mmio.load(path))))
    errors = []

    def receive(seed):
        try:
            for k in range(300):
                i = (seed * 7 + k) % 12
                assert pickle.loads(payloads[i])[0] == float(i)
        except Exception as exc:  # noqa: BLE001 - any failure fails the test below
            errors.append(exc)
    threads = [threading.Thread(target=receive, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sys.setswitchinterval(switch)
    assert not errors and len(sharing._cache) <= 4


def test_review_findings_strided_views_resized_mappings_and_writable_tokens(tmp_path):
    from numpy.lib.stride_tricks import as_strided, sliding_window_view
    path = tmp_path / "a.npy"
    np.save(path, np.arange(1000.0))
    a = mmio.load(path, share=True)
    # as_strided / sliding_window_view leave numpy's DummyArray in the base chain: still a reference
    for view in (sliding_window_view(a, 500, subok=True), as_strided(a, (2000, 1000), (0, 8), subok=True)):
        payload = pickle.dumps(view)
        assert len(payload) < 1024 and np.array_equal(pickle.loads(payload), view)
    assert np.array_equal(pickle.loads(pickle.dumps(mmio.share(sliding_window_view(mmio.load(path), 3)))),
                          sliding_window_view(np.arange(1000.0), 3))
    # a mapping that grew its own file is not stale to itself
    grown = tmp_path / "g.bin"
    with mmio.open(grown, "w+", size=4096) as m:
        m.resize(8192)
        with pickle.loads(pickle.dumps(m)) as again:
            assert len(again) == 8192
    # writable arrays are tokenized by content: an in-place write changes the token
    dask_base = pytest.importorskip("dask.base")
    w = mmio.load(path, mode="r+", share=True)
    w[0] = 1.0
    before = dask_base.tokenize(w)
    w[0] = 2.0
    assert dask_base.tokenize(w) != before
