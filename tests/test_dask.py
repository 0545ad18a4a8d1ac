"""mmio.dask: dask arrays whose graphs carry references to files, chunks mapped on the workers."""

import json
import os
import pickle
import zipfile

import numpy as np
import pytest

import mmio
from conftest import run_python

dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")
import mmio.dask as mdask  # noqa: E402  (after the skip: needs the pymmio[dask] extra)
from mmio.sharing import StaleFileError  # noqa: E402

SMALL_CHUNKS = {"array.chunk-size": "64KiB"}


@pytest.fixture
def threaded():
    with dask.config.set(scheduler="threads"):
        yield


def same(got, want):
    assert got.dtype == want.dtype and got.shape == want.shape
    assert got.tobytes(order="C") == want.tobytes(order="C")  # bit for bit, NaNs of random bytes included


def boundaries(chunks):
    return np.cumsum(chunks)[:-1]


# ---- importing ---------------------------------------------------------------------------------------------

def test_import_mmio_does_not_import_dask_and_mmio_dask_does():
    proc = run_python("""
        import sys, mmio
        assert "dask" not in sys.modules and "distributed" not in sys.modules
        import mmio.dask
        assert "dask.array" in sys.modules
        print("ok")
    """)
    assert proc.stdout.strip() == "ok"


# ---- reading: values equal numpy's -----------------------------------------------------------------------------

@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("dtype", ["f8", ">i4", "u1", "c8"])
def test_from_file_npy_matches_numpy(tmp_path, threaded, order, dtype):
    want = np.asarray(np.random.default_rng(1).integers(0, 200, (97, 61, 5)), dtype=dtype, order=order)
    path = tmp_path / "a.npy"
    np.save(path, want)
    with dask.config.set({"array.chunk-size": "8KiB"}):
        x = mdask.from_file(path)
    assert x.npartitions > 1 and x.dtype == want.dtype
    same(x.compute(), want)
    same(x[3:50:2, ::-1, 1].compute(), want[3:50:2, ::-1, 1])
    assert x.sum().compute() == pytest.approx(want.sum())


@pytest.mark.parametrize("chunks", [(10, 7), ((50, 1, 46), (30, 31)), -1, {0: 40}, "5KiB"])
def test_explicit_chunk_specs(tmp_path, threaded, chunks):
    want = np.arange(97 * 61, dtype="i4").reshape(97, 61)
    np.save(tmp_path / "a.npy", want)
    x = mdask.from_file(tmp_path / "a.npy", chunks=chunks)
    assert x.chunks == da.core.normalize_chunks(chunks, want.shape, dtype=want.dtype)
    same(x.compute(), want)
    for index in np.ndindex(*x.numblocks):
        assert np.array_equal(x.blocks[index].compute(), want[da.core.slices_from_chunks(x.chunks)[
            int(np.ravel_multi_index(index, x.numblocks))]])


def test_zero_d_and_empty_arrays(tmp_path, threaded):
    np.save(tmp_path / "s.npy", np.array(2.5))
    np.save(tmp_path / "e.npy", np.zeros((0, 3), "f4"))
    assert mdask.from_file(tmp_path / "s.npy").compute() == 2.5
    empty = mdask.from_file(tmp_path / "e.npy")
    assert empty.shape == (0, 3) and empty.compute().shape == (0, 3)
    np.save(tmp_path / "v.npy", np.zeros((3, 2), "V0"))  # items of no bytes
    nothing = mdask.from_file(tmp_path / "v.npy")
    assert nothing.chunks == ((3,), (2,)) and nothing.compute().shape == (3, 2)


def test_npz_members(tmp_path, threaded):
    a, b = np.arange(1000.0).reshape(40, 25), np.arange(77, dtype="u2")
    np.savez(tmp_path / "m.npz", a=a, b=b)
    with dask.config.set(SMALL_CHUNKS):
        x = mdask.from_file(tmp_path / "m.npz", "a", chunks=(7, 25))
        same(x.compute(), a)
        same(mdask.from_file(tmp_path / "m.npz", "b.npy").compute(), b)
    with pytest.raises(ValueError, match="holds 2 arrays: name one with key="):
        mdask.from_file(tmp_path / "m.npz")
    with pytest.raises(KeyError, match="'c' is not an array of"):
        mdask.from_file(tmp_path / "m.npz", "c")
    np.savez_compressed(tmp_path / "z.npz", a=a)
    with pytest.raises(ValueError, match="compressed"):
        mdask.from_file(tmp_path / "z.npz", "a")
    with zipfile.ZipFile(tmp_path / "t.npz", "w") as zf:
        zf.writestr("notes.txt", b"hello")
        zf.writestr("a.npy", b"")
    with pytest.raises(ValueError, match="not an .npy file"):
        mdask.from_file(tmp_path / "t.npz", "notes.txt")
    with pytest.raises(ValueError, match="leave out key="):
        np.save(tmp_path / "one.npy", a)
        mdask.from_file(tmp_path / "one.npy", "a")


def _safetensors_bytes(header: dict, data: bytes, pad: int) -> bytes:
    raw = json.dumps(header).encode() + b" " * pad  # spaces: any header length, so any data offset
    return len(raw).to_bytes(8, "little") + raw + data


@pytest.mark.parametrize("pad", [0, 1, 2, 5])
def test_safetensors_tensors_at_unaligned_offsets(tmp_path, threaded, pad):
    tensors = {"a": np.arange(3, dtype="u1"), "b": np.random.default_rng(2).random((50, 7)).astype("f4"),
               "c": np.arange(-8, 8, dtype="<i2").reshape(4, 4), "d": np.linspace(0, 1, 900).reshape(300, 3)}
    header, data = {}, b""
    for name, array in tensors.items():
        header[name] = {"dtype": {"u1": "U8", "f4": "F32", "i2": "I16", "f8": "F64"}[array.dtype.str[1:]],
                        "shape": list(array.shape), "data_offsets": [len(data), len(data) + array.nbytes]}
        data += array.tobytes()
    path = tmp_path / "w.safetensors"
    path.write_bytes(_safetensors_bytes(header, data, pad))
    offsets = {name: spec.offset for name, spec in _layout(path).items()}
    assert any(offsets[name] % tensors[name].itemsize for name in "bcd") or pad == 0
    with dask.config.set({"array.chunk-size": "1KiB"}):
        for name, want in tensors.items():
            x = mdask.from_file(path, name)
            assert name in "ac" or x.npartitions > 1
            same(x.compute(), want)


def test_safetensors_written_by_the_real_package_and_a_sharded_index(tmp_path, threaded):
    st = pytest.importorskip("safetensors.numpy")
    w = np.random.default_rng(3).random((64, 33)).astype("f4")
    st.save_file({"w": w, "b": np.arange(5, dtype="i8")}, str(tmp_path / "s1.safetensors"))
    st.save_file({"e": np.ones((4, 2), "f2")}, str(tmp_path / "s2.safetensors"))
    same(mdask.from_file(tmp_path / "s1.safetensors", "w", chunks=(10, 33)).compute(), w)
    (tmp_path / "index.json").write_text(json.dumps(
        {"weight_map": {"w": "s1.safetensors", "b": "s1.safetensors", "e": "s2.safetensors"}}))
    same(mdask.from_file(tmp_path / "index.json", "e").compute(), np.ones((4, 2), "f2"))
    with pytest.raises(KeyError):
        mdask.from_file(tmp_path / "index.json", "nope")


def test_bf16_tensors(tmp_path, threaded):
    ml_dtypes = pytest.importorskip("ml_dtypes")
    want = np.arange(40, dtype="f4").reshape(8, 5).astype(ml_dtypes.bfloat16)
    path = tmp_path / "h.safetensors"
    path.write_bytes(_safetensors_bytes({"h": {"dtype": "BF16", "shape": [8, 5], "data_offsets": [0, 80]}},
                                        want.tobytes(), 1))
    x = mdask.from_file(path, "h", chunks=(3, 5))
    assert x.dtype == want.dtype
    assert x.compute().tobytes() == want.tobytes()


def _layout(path):
    from mmio import arrays, formats
    fd, size = os.open(path, os.O_RDONLY), os.path.getsize(path)
    try:
        return {spec.name: spec for spec in formats.describe(arrays._pread_at(fd, size), size, str(path)).arrays}
    finally:
        os.close(fd)


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("offset", [0, 3, 4096])
def test_from_raw_matches_memmap(tmp_path, threaded, order, offset):
    path = tmp_path / "r.bin"
    path.write_bytes(os.urandom(offset + 8 * 33 * 130 + 11))
    want = np.memmap(path, "<f8", "r", offset, (33, 130), order)
    with dask.config.set({"array.chunk-size": "8KiB"}):
        x = mdask.from_raw(path, "<f8", (33, 130), offset=offset, order=order)
    assert x.npartitions > 1
    same(x.compute(), np.array(want, order=order))
    same(mdask.from_raw(path, "u1", 7, offset=offset).compute(), np.array(np.memmap(path, "u1", "r", offset, 7)))
    with pytest.raises(ValueError, match="do not fit"):
        mdask.from_raw(path, "<f8", (34, 130), offset=offset)


def _view_facts(chunk):
    return type(chunk).__name__, chunk.flags.writeable, mmio.sharing._mapping_under(chunk) is not None


def _overwrite(chunk):
    chunk[:3] = -1


def test_chunks_are_views_of_the_mapping_results_are_new_memory(tmp_path, threaded):
    np.save(tmp_path / "a.npy", np.arange(100.0))
    x = mdask.from_file(tmp_path / "a.npy", chunks=50)
    first = x.to_delayed()[0]
    assert dask.delayed(_view_facts)(first).compute() == ("ndarray", False, True)
    doubled = (x * 2).compute()
    assert type(doubled) is np.ndarray and doubled.flags.writeable and mmio.sharing._mapping_under(doubled) is None
    writable = mdask.from_file(tmp_path / "a.npy", chunks=50, mode="r+").to_delayed()[0]
    assert dask.delayed(_view_facts)(writable).compute() == ("ndarray", True, True)
    dask.delayed(_overwrite)(writable).compute()  # reaches the file
    assert np.load(tmp_path / "a.npy")[:4].tolist() == [-1, -1, -1, 3]
    with pytest.raises(ValueError, match="mode must be 'r' or 'r\\+'"):
        mdask.from_file(tmp_path / "a.npy", mode="c")


# ---- the graph: small, no bytes ----------------------------------------------------------------------------

def graph_bytes(x) -> int:
    return len(pickle.dumps(dict(x.__dask_graph__())))


def test_graph_carries_references_not_bytes(tmp_path):
    data = os.urandom(1 << 20)
    (tmp_path / "r.bin").write_bytes(data)
    mmio.evict(tmp_path / "r.bin", sync=True)
    x = mdask.from_raw(tmp_path / "r.bin", "u1", 1 << 20, chunks=1 << 16)
    assert mmio.residency(tmp_path / "r.bin").resident == 0  # named and cut without reading a byte
    payload = pickle.dumps(dict(x.__dask_graph__()))
    assert len(payload) < 2048
    assert not any(data[i:i + 8] in payload for i in range(0, len(data), 4096))  # no 8 bytes of any page


def test_graph_size_grows_with_chunks_not_bytes(tmp_path):
    """A 64 GiB (sparse) file in 128 MiB chunks: 512 chunks, under 10 KiB of graph."""
    path = tmp_path / "huge.raw"
    with open(path, "wb") as f:
        f.truncate(64 << 30)
    with dask.config.set({"array.chunk-size": "128MiB"}):
        sizes = {}
        for gib in (8, 64):
            for shape in ((gib << 27,), (gib << 17, 1 << 10)):
                x = mdask.from_raw(path, "f8", shape)
                rows = (128 << 20) // (8 * int(np.prod(shape[1:])))  # 128 MiB of them
                assert x.npartitions == gib * 8 and set(x.chunks[0]) == {rows}
                sizes[gib, len(shape)] = graph_bytes(x)
        assert sizes[64, 1] < 10 * 1024 and sizes[64, 2] < 10 * 1024
        for ndim in (1, 2):
            per_chunk = (sizes[64, ndim] - sizes[8, ndim]) / (512 - 64)
            assert per_chunk < 20, sizes
        # the same chunk count over 8 times the bytes: the same graph size, give or take a digit
        small = mdask.from_raw(path, "f8", (8 << 27,), chunks=(8 << 27) // 64)
        large = mdask.from_raw(path, "f8", (64 << 27,), chunks=(64 << 27) // 64)
        assert small.npartitions == large.npartitions == 64
        assert abs(graph_bytes(small) - graph_bytes(large)) < 16
        # the map is made on demand: the last bytes of the 64 GiB file, one page read
        assert large[-3:].compute(scheduler="threads").tolist() == [0.0, 0.0, 0.0]


# ---- names ---------------------------------------------------------------------------------------------

NAME_OF = """
    import mmio.dask
    print(mmio.dask.from_file({path!r}, {key!r}, chunks={chunks!r}).name)
"""


def test_name_is_stable_across_builds_and_processes_and_changes_with_the_file(tmp_path):
    path = tmp_path / "m.npz"
    np.savez(path, a=np.arange(1000.0), b=np.ones(10))
    os.utime(path, ns=(1_700_000_000_000_000_000, 1_700_000_000_000_000_000))
    name = mdask.from_file(path, "a", chunks=100).name
    assert name.startswith("mmio-") and name == mdask.from_file(str(path), "a", chunks=100).name
    assert name == mdask.from_file(tmp_path / "." / "m.npz", "a.npy", chunks=100).name  # the same array
    child = run_python(NAME_OF.format(path=str(path), key="a", chunks=100)).stdout.strip()
    assert child == name
    assert mdask.from_file(path, "a", chunks=200).name != name
    assert mdask.from_file(path, "b").name != mdask.from_file(path, "a").name
    assert mdask.from_file(path, "a", chunks=100, mode="r+").name != name
    np.savez(path, a=np.arange(1000.0) + 1, b=np.ones(10))  # rewritten in place: same size, new bytes
    os.utime(path, ns=(1_700_000_000_000_000_001, 1_700_000_000_000_000_001))
    assert mdask.from_file(path, "a", chunks=100).name != name


def test_raw_names_depend_on_offset_dtype_shape_and_order(tmp_path):
    path = tmp_path / "r.bin"
    path.write_bytes(bytes(4096))
    names = {mdask.from_raw(path, dtype, shape, offset=offset, order=order).name
             for dtype, shape, offset, order in [("f8", (8, 8), 0, "C"), ("f8", (8, 8), 0, "F"),
                                                 ("f8", (8, 8), 8, "C"), ("i8", (8, 8), 0, "C"),
                                                 ("f8", (64,), 0, "C"), ("<f8", (8, 8), 0, "C")]}
    assert len(names) == 5  # "f8" is "<f8" here


def test_shared_arrays_tokenize_by_reference_without_reading(tmp_path):
    path = tmp_path / "s.npy"
    np.save(path, np.arange(1_000_000.0))
    mmio.evict(path, sync=True)
    shared = mmio.load(path, share=True)
    header_pages = mmio.residency(path).resident  # the header's read, and its read-ahead
    token = dask.base.tokenize(shared)
    assert token == dask.base.tokenize(mmio.load(path, share=True)) != dask.base.tokenize(shared[1:])
    assert mmio.residency(path).resident == header_pages < 64  # not one page of data was read to name it
    assert dask.base.tokenize(shared.copy()) != token  # a copy is named by its bytes


# ---- default chunks ------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape, dtype, offset", [
    ((1000, 1000), "f8", 128), ((1_000_000,), "f4", 128), ((500_000, 3), "i2", 192), ((99999, 7, 3), "f8", 80),
    ((30000, 50), "f8", 17),  # odd offset: no row starts on a page; blocks are still whole pages
    ((100, 100_001), "u1", 128)])  # the rows that fill whole pages are 400 MB: whole rows, near the target
def test_auto_chunks_are_page_aligned_contiguous_blocks(shape, dtype, offset):
    target = 1 << 20
    chunks = mdask.auto_chunks(shape, dtype, "C", offset, target=target)
    assert all(len(c) == 1 for c in chunks[1:]) and len(chunks[0]) > 2 and sum(chunks[0]) == shape[0]
    row = np.dtype(dtype).itemsize * int(np.prod(shape[1:]))
    assert all(size * row <= target for size in chunks[0])
    period = mmio.PAGE_SIZE // np.gcd(row, mmio.PAGE_SIZE)
    if period > target // row:
        assert set(chunks[0][:-1]) == {target // row}
        return
    assert all(size * row > target // 2 for size in chunks[0][1:-1])
    assert all(size * row % mmio.PAGE_SIZE == 0 for size in chunks[0][1:-1])
    cuts = [offset + b * row for b in boundaries(chunks[0])]
    assert all(cut % mmio.PAGE_SIZE == 0 for cut in cuts) == (offset % np.gcd(row, mmio.PAGE_SIZE) == 0)
    assert mdask.auto_chunks(shape[::-1], dtype, "F", offset, target=target) == chunks[::-1]


def test_auto_chunks_cut_the_next_axis_when_a_row_is_too_big():
    assert mdask.auto_chunks((3, 4, 1 << 20), "u1", target=1 << 20) == ((1,) * 3, (1,) * 4, (1 << 20,))
    chunks = mdask.auto_chunks((2, 1 << 22), "f4", target=1 << 20)
    assert chunks == ((1, 1), (1 << 18,) * 16)


def test_default_chunks_follow_dask_config_and_are_page_aligned(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((1000, 1000)))
    offset = _layout(tmp_path / "a.npy")[None].offset
    with dask.config.set({"array.chunk-size": "1MiB"}):
        x = mdask.from_file(tmp_path / "a.npy")
    assert x.chunks == mdask.auto_chunks((1000, 1000), "f8", "C", offset, 1 << 20)
    assert all((offset + b * 8000) % mmio.PAGE_SIZE == 0 for b in boundaries(x.chunks[0]))


# ---- store -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("chunks", [(7, 13), (100, 1), ((30, 70), (5, 5, 3))])
def test_store_round_trips(tmp_path, threaded, order, chunks):
    want = np.random.default_rng(4).random((100, 13))
    x = da.from_array(want, chunks=chunks) * 3
    assert mdask.store(x, tmp_path / "out.npy", order=order) is None
    got = np.load(tmp_path / "out.npy")
    assert np.array_equal(got, want * 3) and got.flags.f_contiguous == (order == "F")


def test_store_odd_shapes_and_delayed(tmp_path, threaded):
    mdask.store(da.zeros((0, 4), chunks=2), tmp_path / "e.npy")
    assert np.load(tmp_path / "e.npy").shape == (0, 4)
    mdask.store(da.from_array(np.array(7, "i2")), tmp_path / "s.npy")
    assert np.load(tmp_path / "s.npy") == 7
    later = mdask.store(da.arange(10, chunks=3, dtype="u4"), tmp_path / "d.npy", sync=False, compute=False)
    assert not np.load(tmp_path / "d.npy").any()  # created, not written yet
    later.compute()
    assert np.load(tmp_path / "d.npy").tolist() == list(range(10))
    with pytest.raises(ValueError, match="known chunk sizes"):
        x = da.arange(10, chunks=3)
        mdask.store(x[x > 3], tmp_path / "u.npy")


def test_store_graph_is_small_and_reads_its_own_output(tmp_path, threaded):
    np.save(tmp_path / "a.npy", np.arange(200_000.0))
    with dask.config.set(SMALL_CHUNKS):
        x = mdask.from_file(tmp_path / "a.npy")
    writes = mdask.store(x + 1, tmp_path / "b.npy", compute=False)
    graph = dict(writes.__dask_graph__())
    writers = [v for k, v in graph.items() if isinstance(k, tuple) and k[0] == writes.key]
    assert len(writers) == x.npartitions and len(pickle.dumps(writers)) < 40 * len(writers) + 1024
    writes.compute()
    same(np.load(tmp_path / "b.npy"), np.arange(200_000.0) + 1)


# ---- stale files --------------------------------------------------------------------------------------------

def test_a_file_changed_after_the_graph_was_built_is_stale(tmp_path, threaded):
    path = tmp_path / "a.npy"
    np.save(path, np.arange(1000.0))
    x = mdask.from_file(path, chunks=100)
    np.save(path, np.arange(1000.0) * 2)  # the same size: only the times tell
    os.utime(path, ns=(1, 1))
    with pytest.raises(StaleFileError, match="not the file the sender mapped"):
        x.sum().compute()
    os.unlink(path)
    with pytest.raises(StaleFileError, match="is gone"):
        x.sum().compute()


# ---- residency tables -----------------------------------------------------------------------------------------

def test_cluster_residency_table_prints_and_draws():
    rows = [mdask.HostFileResidency("node1", "/data/a.npy", 3 << 20, 0.75, 4 << 20),
            mdask.HostFileResidency("node2", "/data/<b>.npy", None, None, None, "[Errno 2] No such file")]
    table = mdask.ClusterResidency(rows)
    text = str(table)
    assert text.splitlines()[0].split() == ["host", "file", "cached", "size", "fraction"]
    assert "node1  /data/a.npy    3.0 MiB  4.0 MiB     75.0%" in text and "No such file" in text
    assert repr(table) == text and len(table) == 2 and table[0].fraction == 0.75
    html = table._repr_html_()
    assert html.count("<tr>") == 3 and "&lt;b&gt;" in html and "width:120px" in html


# ---- a distributed cluster of process workers ---------------------------------------------------------------

@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None,
                                  worker_dashboard_address=None) as cluster, distributed.Client(cluster) as c:
        yield c


def _mappings_of(path):
    return sum(1 for region in mmio.maps(figures=False) if region.path == path)


def _how_it_arrived(array):
    mapping = mmio.sharing._mapping_under(array)
    return type(array).__name__, None if mapping is None else str(mapping.path), float(array.sum())


def test_cluster_computes_from_file_mapping_each_file_once_per_worker(tmp_path, client):
    want = np.random.default_rng(5).random((400, 300))
    path = tmp_path / "a.npy"
    np.save(path, want)
    with dask.config.set(SMALL_CHUNKS):
        x = mdask.from_file(path)
    assert x.npartitions > 8
    assert float(x.sum().compute()) == pytest.approx(want.sum())
    same(x.compute(), want)
    mappings = client.run(_mappings_of, str(path))  # worker address -> mappings of the file in its process
    assert set(mappings.values()) <= {0, 1} and sum(mappings.values()) >= 1, mappings


def test_cluster_store_round_trips(tmp_path, client):
    want = np.arange(300_000, dtype="i8").reshape(600, 500)
    x = da.from_array(want, chunks=(77, 250)) - 5
    mdask.store(x, tmp_path / "out.npy")
    same(np.load(tmp_path / "out.npy"), want - 5)
    with dask.config.set(SMALL_CHUNKS):
        y = mdask.from_file(tmp_path / "out.npy")
    mdask.store(y[::-1] * 2, tmp_path / "back.npy", order="F")
    same(np.load(tmp_path / "back.npy"), np.asfortranarray((want - 5)[::-1] * 2))


def test_cluster_receives_shared_arrays_by_reference(tmp_path, client):
    distributed = pytest.importorskip("distributed")
    path = tmp_path / "s.npy"
    np.save(path, np.arange(1_000_000.0))
    shared = mmio.load(path, share=True)
    header, frames = distributed.protocol.serialize(shared[::-3])
    assert sum(memoryview(f).nbytes for f in frames) < 1024  # not 2.7 MB
    assert len(pickle.dumps(shared)) < 1024
    expected = ("SharedArray", str(path), float(shared.sum()))
    assert client.submit(_how_it_arrived, shared).result() == expected
    assert client.submit(np.sum, shared).result() == shared.sum()
    [scattered] = client.scatter([shared])
    assert client.submit(_how_it_arrived, scattered).result() == expected
    copy = shared.copy()  # its bytes are all there is: by value, as a plain ndarray
    assert client.submit(_how_it_arrived, client.scatter(copy)).result() == ("ndarray", None, float(copy.sum()))


def test_cluster_stale_file_error_reaches_the_client(tmp_path, client):
    path = tmp_path / "a.npy"
    np.save(path, np.arange(10_000.0))
    x = mdask.from_file(path, chunks=1000)
    np.save(path, np.arange(10_000.0) + 1)
    os.utime(path, ns=(2, 2))
    with pytest.raises(StaleFileError, match="not the file the sender mapped"):
        x.sum().compute()


def test_cluster_residency_follows_touch_and_evict(tmp_path, client):
    warm, cold = tmp_path / "warm.bin", tmp_path / "cold.bin"
    warm.write_bytes(os.urandom(64 * mmio.PAGE_SIZE + 100))
    cold.write_bytes(os.urandom(32 * mmio.PAGE_SIZE))
    for path in (warm, cold):
        mmio.evict(path, sync=True)
    mmio.touch(warm)
    table = mdask.residency(client, [warm, cold, tmp_path / "missing.bin"])
    assert len(table) == 3  # two workers, one machine: one row per file
    rows = {row.file: row for row in table}
    assert rows[str(warm)].fraction == 1.0 and rows[str(warm)].cached_bytes == 64 * mmio.PAGE_SIZE + 100
    assert rows[str(cold)].fraction == 0.0 and rows[str(cold)].cached_bytes == 0
    assert rows[str(tmp_path / "missing.bin")].error and "No such file" in str(table)
    mmio.evict(warm)
    mmio.touch(cold, 0, 8 * mmio.PAGE_SIZE)
    rows = {row.file: row for row in mdask.residency(client, [warm, cold])}
    assert rows[str(warm)].fraction == 0.0 and rows[str(cold)].fraction == 0.25
