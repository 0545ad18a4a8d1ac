"""mmio.load / open_array / create against numpy and the real safetensors package."""

import io
import itertools
import json
import os
import zipfile

import numpy as np
import pytest

import mmio
from conftest import run_python, vm_flags

PAGE = mmio.PAGE_SIZE

DTYPES = ["u1", ">i2", "<f4", "f8", "c16", "?", "U7", "S5", "M8[ns]", "m8[s]", "f2", "V8",
          [("a", "<i4"), ("b", "<f8", (2,))],
          [("outer", [("x", "u1"), ("y", ">f4")]), ("z", "i8")]]
SHAPES = [(), (0,), (5,), (3, 4), (2, 3, 4), (0, 3)]


def sample(dtype, shape):
    dtype = np.dtype(dtype)
    n = int(np.prod(shape, dtype=np.int64))
    raw = np.random.default_rng(n).integers(0, 256, n * dtype.itemsize, dtype=np.uint8)
    if dtype.kind == "U":
        return np.array(["héllo"[: i % 6] for i in range(n)], dtype=dtype).reshape(shape)
    if dtype.kind == "b":
        raw %= 2
    return raw.view(dtype).reshape(shape)


def matrix():
    for dtype, shape, fortran, version in itertools.product(range(len(DTYPES)), SHAPES, (False, True),
                                                            ((1, 0), (2, 0), (3, 0))):
        if fortran and len(shape) < 2:
            continue
        yield pytest.param(DTYPES[dtype], shape, fortran, version, id=f"{dtype}-{shape}-{fortran}-{version}")


def write(path, array, version):
    with open(path, "wb") as f:
        np.lib.format.write_array(f, array, version=version)


def same(a, b):
    assert type(a) is np.ndarray
    assert (a.dtype, a.shape) == (b.dtype, b.shape)
    assert a.flags.f_contiguous == b.flags.f_contiguous or a.ndim < 2
    assert a.tobytes(order="A") == b.tobytes(order="A")


@pytest.mark.parametrize("dtype, shape, fortran, version", list(matrix()))
def test_load_matches_numpy(tmp_path, dtype, shape, fortran, version):
    array = sample(dtype, shape)
    if fortran:
        array = np.asfortranarray(array)
    path = tmp_path / "a.npy"
    write(path, array, version)
    expected = np.load(path)
    same(mmio.load(path), expected)
    same(mmio.load(path, copy=True), expected)
    same(mmio.load(path, mode="c"), expected)


@pytest.mark.filterwarnings("ignore:Stored array in format 3.0")
def test_unicode_field_names_need_version_3(tmp_path):
    array = np.zeros(3, dtype=[("α", "<i4"), ("日本", "f8")])
    path = tmp_path / "u.npy"
    np.save(path, array)  # numpy picks 3.0 for non-latin-1 names
    assert open(path, "rb").read(8)[6:8] == b"\x03\x00"
    same(mmio.load(path), np.load(path))


def test_load_is_zero_copy_and_modes(tmp_path):
    path = tmp_path / "a.npy"
    np.save(path, np.arange(10.0))
    a = mmio.load(path)
    assert isinstance(a.base, mmio._mapping.MappingExport) and not a.flags.writeable
    w = mmio.load(path, mode="r+")
    w[0] = 42.0
    assert np.load(path)[0] == 42.0
    c = mmio.load(path, mode="c")
    c[1] = -1.0
    assert np.load(path)[1] == 1.0
    with pytest.raises(ValueError, match="mmio.create"):
        mmio.load(path, mode="w+")


@pytest.mark.parametrize("n", [1000, 3 << 18])  # read path and parallel-copy path
def test_copy_is_private_and_out_is_filled(tmp_path, n):
    path = tmp_path / "a.npy"
    data = np.random.default_rng(1).random(n)
    np.save(path, data)
    for threads in (1, 2, 3):
        c = mmio.load(path, copy=True, threads=threads)
        np.testing.assert_array_equal(c, data)
        assert c.flags.writeable
        c[0] = 99
        assert np.load(path)[0] == data[0]
    out = np.empty_like(data)
    assert mmio.load(path, out=out, threads=2) is out
    np.testing.assert_array_equal(out, data)
    for bad_out, message in [(np.empty(n, "f4"), "dtype"), (np.empty(n + 1), "shape"),
                             (np.empty(2 * n)[::2], "contiguous"), ([0.0] * n, "ndarray")]:
        with pytest.raises((ValueError, TypeError), match=message):
            mmio.load(path, out=bad_out)
    ro = np.empty_like(data)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="writable"):
        mmio.load(path, out=ro)


def test_load_policies_reach_the_mapping(tmp_path):
    path = tmp_path / "a.npy"
    np.save(path, np.zeros(64 * PAGE // 8))
    a = mmio.load(path, advice="random")
    assert "rr" in vm_flags(a.ctypes.data)
    s = mmio.load(path, advice=mmio.Advice.SEQUENTIAL, populate=True)
    assert "sr" in vm_flags(s.ctypes.data)
    assert a.ctypes.data % PAGE == 128  # the data starts inside a page: advice was aligned
    r = mmio.residency(s)
    assert r.fraction == 1.0
    h = mmio.load(path, huge=True)
    assert "hg" in vm_flags(h.ctypes.data)


# ---- npz ---------------------------------------------------------------------------------------

def test_npz_members_zero_copy(tmp_path):
    path = tmp_path / "a.npz"
    arrays = {"x": np.arange(12).reshape(3, 4), "y": np.asfortranarray(np.ones((2, 5))),
              "z": np.array("text"), "w": np.zeros((0,), "f4")}
    np.savez(path, **arrays)
    with mmio.load(path) as z:
        assert sorted(z) == sorted(arrays) and z.files == list(z) and len(z) == 4
        for name in arrays:
            same(z[name], np.load(path)[name])
        assert z["x.npy"] is z["x"]
        x = z["x"]
        assert isinstance(x.base, mmio._mapping.MappingExport)
        with pytest.raises(KeyError, match="'nope'"):
            z["nope"]
    owner = x.base.mapping  # the array keeps the mapping alive after close(); checked before x is read (and
    assert not owner.closed  # without x in the assertion, which pytest would print): reading x would crash
    assert x.sum() == 66
    copied = mmio.load(path, copy=True)
    same(copied["y"], np.load(path)["y"])
    assert copied["y"].flags.writeable


def test_npz_compressed_member_names_itself(tmp_path):
    path = tmp_path / "c.npz"
    np.savez_compressed(path, small=np.arange(3))
    z = mmio.load(path)
    with pytest.raises(ValueError, match="'small.npy' is compressed"):
        z["small"]


# ---- safetensors ----------------------------------------------------------------------------------

def test_safetensors_written_by_the_real_package(tmp_path):
    st = pytest.importorskip("safetensors.numpy")
    tensors = {"f32": np.random.default_rng(0).random((3, 4)).astype("f4"),
               "f16": np.arange(5, dtype="f2"), "i64": np.arange(7, dtype="i8"),
               "u8": np.arange(9, dtype="u1"), "bool": np.array([True, False]),
               "scalar": np.array(3.5, "f8"), "empty": np.zeros((0, 2), "i4"),
               "i16": np.arange(4, dtype="i2"), "u32": np.arange(4, dtype="u4")}
    path = tmp_path / "m.safetensors"
    st.save_file(tensors, path, metadata={"format": "np"})
    loaded = mmio.load(path)
    assert loaded.metadata == {"format": "np"}
    reference = st.load_file(path)
    assert sorted(loaded) == sorted(reference)
    for name, expected in reference.items():
        same(loaded[name], expected)
    assert isinstance(loaded["f32"].base, mmio._mapping.MappingExport)
    copied = mmio.load(path, copy=True, threads=2)
    for name, expected in reference.items():
        same(copied[name], expected)


def test_safetensors_unknown_dtype_is_refused_by_name(tmp_path):
    header = json.dumps({"w": {"dtype": "Q16", "shape": [2], "data_offsets": [0, 4]}}).encode()
    path = tmp_path / "q.safetensors"
    path.write_bytes(len(header).to_bytes(8, "little") + header + b"\0" * 4)
    with pytest.raises(ValueError, match="tensor 'w': unsupported dtype 'Q16'"):
        mmio.load(path)


# ---- open_array and create ----------------------------------------------------------------------------

def test_open_array_like_memmap(tmp_path):
    path = tmp_path / "raw.bin"
    data = np.arange(100, dtype="<i4")
    data.tofile(path)
    a = mmio.open_array(path, "<i4")
    np.testing.assert_array_equal(a, np.memmap(path, "<i4", mode="r"))
    assert type(a) is np.ndarray
    b = mmio.open_array(path, "<i4", shape=(3, 5), offset=8, order="F")
    np.testing.assert_array_equal(b, np.memmap(path, "<i4", mode="r", shape=(3, 5), offset=8, order="F"))
    w = mmio.open_array(path, "<i4", mode="r+", shape=10)
    w[:] = -1
    assert np.fromfile(path, "<i4")[:10].tolist() == [-1] * 10
    with pytest.raises(ValueError, match="never grows"):
        mmio.open_array(path, "<i4", mode="r+", shape=1000)
    assert os.path.getsize(path) == 400
    new = mmio.open_array(tmp_path / "new.bin", "f8", shape=(4, 4), offset=16, mode="w+")
    assert os.path.getsize(tmp_path / "new.bin") == 16 + 128 and not new.any()
    with pytest.raises(ValueError, match="needs shape"):
        mmio.open_array(tmp_path / "other.bin", "f8", mode="w+")


@pytest.mark.parametrize("shape, dtype, fortran", [((2, 3), "f4", False), ((2, 3), "<i8", True),
                                                   ((), "c8", False), ((0, 5), "u1", False),
                                                   ((4,), [("a", "u1"), ("b", "<f8")], False)])
def test_create_is_readable_by_numpy(tmp_path, shape, dtype, fortran):
    path = tmp_path / "new.npy"
    a = mmio.create(path, shape, dtype, fortran_order=fortran)
    a[...] = sample(dtype, shape)
    expected = a.copy(order="K")
    del a
    same(np.load(path), expected)
    same(mmio.load(path), expected)


def test_create_refuses_objects(tmp_path):
    with pytest.raises(ValueError, match="Python objects"):
        mmio.create(tmp_path / "o.npy", 3, object)
    with pytest.raises(ValueError, match="negative"):
        mmio.create(tmp_path / "o.npy", (-1,), "f8")


def test_npz_membership_does_not_map_or_raise(tmp_path):
    path = tmp_path / "mixed.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("ok.npy", _npy_bytes(np.arange(3)))
        z.writestr(zipfile.ZipInfo("packed.npy"), _npy_bytes(np.arange(3)), compress_type=zipfile.ZIP_DEFLATED)
    arrays = mmio.load(path)
    assert "packed" in arrays and "packed.npy" in arrays and "ok" in arrays and "missing" not in arrays
    assert 3 not in arrays
    with pytest.raises(ValueError, match="'packed.npy' is compressed"):
        arrays["packed"]


def test_reads_past_the_end_give_nothing_whatever_the_offset(tmp_path):
    from mmio.arrays import _pread_at
    path = tmp_path / "f"
    path.write_bytes(b"x" * 10)
    fd = os.open(path, os.O_RDONLY)
    try:
        read_at = _pread_at(fd, 10)
        assert read_at(2 ** 70, 16) == b"" and read_at(5, 100) == b"xxxxx" and read_at(-1, 4) == b""
    finally:
        os.close(fd)


def _npy_bytes(array):
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


@pytest.mark.parametrize("shape, dtype, fortran", [
    ((), "<f8", False), ((0,), "<f8", False), ((3,), "<i2", False), ((2, 3), "<f8", True), ((2, 3, 4), ">f8", False),
    ((5,), "i4,f8", False), ((2,), [("é", "<i4")], False), ((2,), [("名", "<i4")], False),
    ((1,), [(f"f{i}", "<i4") for i in range(4000)], False), ((7, 10 ** 6 + 1), "u1", False), ((2,), "M8[ns]", False),
])
def test_create_writes_the_header_numpy_writes_byte_for_byte(tmp_path, shape, dtype, fortran):
    import warnings
    from numpy.lib.format import open_memmap
    dtype = np.dtype(dtype)
    ours, theirs = tmp_path / "ours.npy", tmp_path / "theirs.npy"
    mmio.create(ours, shape, dtype, fortran_order=fortran)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numpy warns when it picks format 2.0 or 3.0
        open_memmap(theirs, "w+", dtype, shape, fortran_order=fortran).flush()
    assert ours.read_bytes() == theirs.read_bytes()
    saved = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        np.save(saved, np.zeros(shape, dtype, order="F" if fortran else "C"))
    assert saved.getvalue() == ours.read_bytes()


@pytest.mark.parametrize("dtype", ["V0", np.dtype([]), np.dtype({"names": [], "formats": [], "itemsize": 0})])
def test_zero_itemsize_dtypes_load_as_numpy_loads_them(tmp_path, dtype):
    path = tmp_path / "v0.npy"
    np.save(path, np.zeros((3, 2), dtype))
    theirs = np.load(path)
    for kwargs in ({}, {"copy": True}, {"mode": "c"}):
        ours = mmio.load(path, **kwargs)
        assert ours.shape == theirs.shape == (3, 2) and ours.dtype == theirs.dtype
    np.savez(tmp_path / "v0.npz", a=np.zeros(4, dtype))
    assert mmio.load(tmp_path / "v0.npz")["a"].shape == (4,)
    mmio.create(tmp_path / "new.npy", (5,), dtype)
    assert np.load(tmp_path / "new.npy").shape == (5,)
    assert mmio.anonymous(8).array(dtype, (7,)).shape == (7,)


def test_a_zero_size_string_header_loads_as_numpy_loads_it(tmp_path):
    path = tmp_path / "s0.npy"
    header = "{'descr': '|S0', 'fortran_order': False, 'shape': (100000,), }"
    path.write_bytes(mmio.formats.npy.NPY_MAGIC + b"\x01\x00" + (118).to_bytes(2, "little")
                     + header.encode().ljust(117) + b"\n")
    theirs, ours = np.load(path), mmio.load(path)
    assert ours.shape == theirs.shape and ours.dtype.itemsize == theirs.dtype.itemsize == 0


def test_npz_members_that_are_not_npy_files_give_their_bytes_as_numpy_does(tmp_path):
    path = tmp_path / "mixed.npz"
    np.savez(path, a=np.arange(3))
    with zipfile.ZipFile(path, "a") as z:
        z.writestr("notes.txt", b"hello")
        z.writestr("fake.npy", b"not an npy file")
        z.writestr("packed.txt", b"squeezed " * 20, compress_type=zipfile.ZIP_DEFLATED)
        z.writestr("empty", b"")
    theirs = dict(np.load(path))
    for kwargs in ({}, {"copy": True}):
        ours = dict(mmio.load(path, **kwargs))
        assert sorted(ours) == sorted(theirs) == ["a", "empty", "fake", "notes.txt", "packed.txt"]
        assert ours["notes.txt"] == b"hello" and ours["fake"] == b"not an npy file" and ours["empty"] == b""
        assert all(ours[k] == theirs[k] for k in theirs if k != "a") and ours["a"].tolist() == [0, 1, 2]


def _safetensors_bytes(header: dict, data: bytes) -> bytes:
    raw = json.dumps(header).encode()
    return len(raw).to_bytes(8, "little") + raw + data


def test_bf16_and_fp8_safetensors_load_as_ml_dtypes_zero_copy_and_copied(tmp_path):
    ml_dtypes = pytest.importorskip("ml_dtypes")
    weights = np.arange(6, dtype=np.float32).reshape(2, 3).astype(ml_dtypes.bfloat16)
    scales = np.linspace(-2, 2, 8).astype(ml_dtypes.float8_e4m3fn)
    other = np.linspace(-3, 3, 4).astype(ml_dtypes.float8_e5m2)
    path = tmp_path / "w.safetensors"
    path.write_bytes(_safetensors_bytes(
        {"w": {"dtype": "BF16", "shape": [2, 3], "data_offsets": [0, 12]},
         "s": {"dtype": "F8_E4M3", "shape": [8], "data_offsets": [12, 20]},
         "o": {"dtype": "F8_E5M2", "shape": [4], "data_offsets": [20, 24]}},
        weights.tobytes() + scales.tobytes() + other.tobytes()))
    for kwargs in ({}, {"copy": True}, {"copy": True, "threads": 2}, {"mode": "c"}):
        tensors = mmio.load(path, **kwargs)
        for name, want in (("w", weights), ("s", scales), ("o", other)):
            assert tensors[name].dtype == want.dtype and tensors[name].tobytes() == want.tobytes()
        assert (tensors["w"].base is not None) == (not kwargs.get("copy", False))


def test_bf16_without_ml_dtypes_says_what_to_install_and_packed_dtypes_are_refused(tmp_path):
    path = tmp_path / "w.safetensors"
    path.write_bytes(_safetensors_bytes({"w": {"dtype": "BF16", "shape": [1], "data_offsets": [0, 2]}}, b"\0\0"))
    proc = run_python(f"""
        import sys
        sys.modules["ml_dtypes"] = None   # as if not installed
        import mmio
        try:
            mmio.load({str(path)!r})
        except ValueError as e:
            print(e)
    """)
    assert proc.stdout.strip() == (f"{path}: tensor 'w' has dtype BF16, which numpy has only through ml_dtypes: "
                                   "pip install ml_dtypes (or pymmio[ml])")
    path.write_bytes(_safetensors_bytes({"p": {"dtype": "F4", "shape": [2], "data_offsets": [0, 1]}}, b"\x12"))
    with pytest.raises(ValueError, match=f"^{path}: tensor 'p': dtype F4 packs 4-bit items"):
        mmio.load(path)


def test_large_copies_are_ordinary_arrays_faulted_in_before_the_copy(tmp_path):
    # A copy is an ndarray owning its memory (the allocator's, which recycles what freed arrays left), and
    # its pages are faulted in by one MADV_POPULATE_WRITE per thread before the copy, not one fault per page.
    from mmio import _buffers
    path = tmp_path / "big.npy"
    np.save(path, np.arange(4 << 17, dtype="f8"))  # 4 MiB: past the read-it-instead size
    for threads in (1, 2):
        c = mmio.load(path, copy=True, threads=threads)
        assert c.flags.owndata and c.base is None
        np.testing.assert_array_equal(c, np.arange(4 << 17, dtype="f8"))
    fresh = np.empty(64 << 20, np.uint8)  # past glibc's largest heap threshold: a fresh mapping, not faulted
    interior = fresh[mmio.PAGE_SIZE:-mmio.PAGE_SIZE]
    assert mmio.residency(interior).fraction < 0.5
    _buffers.prefault_private(fresh, 2, False)
    assert mmio.residency(interior).fraction == 1.0


@pytest.mark.parametrize("kind, features, huge", [
    ("0x0005", "0110010100" + "0" * 54, False),   # a balloon that reports free pages: the host takes them
    ("0x0005", "0110000100" + "0" * 54, True),    # a balloon without free page reporting
    ("0x0001", "0000010000" + "0" * 54, True),    # bit 5 of another device (a network card) means nothing
    (None, None, True),                           # no virtio devices: bare metal
])
def test_huge_pages_for_copies_unless_the_hypervisor_takes_freed_memory(tmp_path, kind, features, huge):
    from mmio.arrays import _huge_pages_pay
    if kind is not None:
        device = tmp_path / "virtio0"
        device.mkdir()
        (device / "device").write_text(kind + "\n")
        (device / "features").write_text(features + "\n")
    assert _huge_pages_pay(str(tmp_path)) is huge


def test_lazy_containers_pickle_as_their_file_loaded_again(tmp_path):
    import pickle
    path = tmp_path / "z.npz"
    np.savez(path, a=np.arange(100_000.0), b=np.ones((3, 4)))
    shared = mmio.load(path, share=True)
    payload = pickle.dumps(shared)
    assert len(payload) < 1024
    again = pickle.loads(payload)
    assert isinstance(again, mmio.arrays.NpzArrays) and isinstance(again["a"], mmio.SharedArray)
    np.testing.assert_array_equal(again["a"], np.arange(100_000.0))
    writable = mmio.load(path, mode="r+")
    writable["b"][0, 0] = 7  # its own writes move mtime: an r+ container is checked by inode
    assert pickle.loads(pickle.dumps(writable))["b"][0, 0] == 7
    for private in (mmio.load(path, copy=True), mmio.load(path, mode="c")):  # private memory, maybe written
        with pytest.raises(TypeError, match="private memory"):
            pickle.dumps(private)
    np.savez(path, a=np.arange(5.0))  # a different file now: the reference is stale
    with pytest.raises(mmio.StaleFileError):
        pickle.loads(payload)


def test_a_checkpoint_whose_files_are_links_pickles_and_checks_every_shard(tmp_path):
    # The Hugging Face cache: snapshots/<rev>/ holds links to blobs/<hash>; shards are found beside the link.
    import pickle
    from safetensors.numpy import save_file
    blobs, snap = tmp_path / "blobs", tmp_path / "snap"
    blobs.mkdir()
    snap.mkdir()
    save_file({"w": np.ones(4, np.float32)}, blobs / "aaa")
    save_file({"v": np.zeros(2, np.float32)}, blobs / "bbb")
    (blobs / "ccc").write_text(json.dumps({"weight_map": {"w": "m-1.safetensors", "v": "m-2.safetensors"}}))
    for name, blob in (("m-1.safetensors", "aaa"), ("m-2.safetensors", "bbb"),
                       ("model.safetensors.index.json", "ccc")):
        (snap / name).symlink_to(f"../blobs/{blob}")
    payload = pickle.dumps(mmio.load(snap / "model.safetensors.index.json", share=True))
    np.testing.assert_array_equal(pickle.loads(payload)["w"], np.ones(4, np.float32))
    save_file({"v": np.full(2, 5, np.float32)}, blobs / "bbb")  # a shard rewritten since
    with pytest.raises(mmio.StaleFileError):
        pickle.loads(payload)


def test_a_copy_never_maps_its_source_so_memory_peaks_at_the_copy(tmp_path):
    # copy=True reads the file with pread into the destination: the file's pages are not mapped into the
    # process (a mapped source counts in its RSS, beside the copy: twice the array at the peak).
    path = tmp_path / "big.npy"
    np.save(path, np.ones(8 << 20))  # 64 MiB
    proc = run_python(f"""
        import resource, numpy as np, mmio
        path = {str(path)!r}
        mmio.touch(path)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        a = mmio.load(path, copy=True, threads=2)
        grew = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
        print(grew * 1024 / a.nbytes, a.sum() == a.size, path in open("/proc/self/maps").read())
    """)
    ratio, right, mapped = proc.stdout.split()
    assert right == "True" and mapped == "False"
    assert float(ratio) < 1.25  # the copy itself, and no second copy's worth
