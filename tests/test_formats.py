"""The format protocol: each format sniffs a head and describes its arrays through read_at, nothing else."""

import io
import json
import zipfile

import numpy as np
import pytest

import mmio
from mmio import formats
from mmio.formats import ArraySpec, npy, npz, safetensors


def reader(data: bytes):
    """``read_at`` over bytes in memory: a format that reopened the file by name would fail here."""
    return lambda offset, n: data[offset:offset + n]


def saved(array, version=None) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, array, version=version)
    return buf.getvalue()


@pytest.mark.parametrize("array", [np.arange(6.0).reshape(2, 3), np.asfortranarray(np.ones((3, 2), "<i2")),
                                   np.zeros((), "u1"), np.zeros((0, 5), ">f4"),
                                   np.zeros(3, [("a", "<i4"), ("b", "S3")])])
@pytest.mark.parametrize("version", [(1, 0), (2, 0)])
def test_npy_describes_what_numpy_wrote(array, version):
    data = saved(array, version)
    layout = npy.describe(reader(data), len(data), "a.npy")
    (spec,) = layout.arrays
    assert layout.container == "array" and npy.sniff(data)
    assert spec.dtype == array.dtype and spec.shape == array.shape
    assert spec.order == ("F" if array.flags.f_contiguous and not array.flags.c_contiguous else "C")
    assert data[spec.offset:spec.offset + spec.nbytes] == array.tobytes(order="A")
    assert spec.offset % 64 == 0 and spec.offset + spec.nbytes == len(data)


def test_npy_reads_a_header_longer_than_the_first_read():
    array = np.zeros(2, [(f"field_{i:04d}", "<f8") for i in range(400)])  # a ~10 KiB header
    data = saved(array)
    reads = []
    spec = npy.describe(lambda o, n: reads.append((o, n)) or data[o:o + n], len(data), "a.npy").arrays[0]
    assert spec.offset > formats.HEAD and spec.dtype == array.dtype
    assert reads == [(0, formats.HEAD), (0, spec.offset)]


def test_npz_members_are_described_at_their_offsets_without_reopening():
    arrays = {"a": np.arange(5), "b": np.ones((2, 2), "f4"), "nested/c": np.zeros(3, "u1")}
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    data = buf.getvalue()
    layout = npz.describe(reader(data), len(data), "x.npz")
    assert npz.sniff(data) and layout.container == "lazy"
    specs = {spec.name: spec for spec in layout.arrays}
    assert set(specs) == set(arrays)
    for name, array in arrays.items():
        spec = specs[name]
        assert spec.refusal is None and spec.dtype == array.dtype and spec.shape == array.shape
        assert data[spec.offset:spec.offset + spec.nbytes] == array.tobytes()


def test_npz_member_that_cannot_be_mapped_is_refused_by_name_and_the_rest_still_load():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("ok.npy", saved(np.arange(3)))
        z.writestr(zipfile.ZipInfo("packed.npy"), saved(np.arange(3)), compress_type=zipfile.ZIP_DEFLATED)
        z.writestr("junk.npy", saved(np.arange(3))[:20])
        z.writestr("notes.txt", b"not an npy")
    data = buf.getvalue()
    specs = {s.name: s for s in npz.describe(reader(data), len(data), "x.npz").arrays}
    assert specs["ok"].refusal is None
    assert "'packed.npy' is compressed" in specs["packed"].refusal and "x.npz" in specs["packed"].refusal
    assert "x.npz[junk.npy]" in specs["junk"].refusal
    assert specs["notes.txt"].refusal is None and specs["notes.txt"].raw_member == "notes.txt"


def test_safetensors_describes_tensors_and_metadata():
    header = {"__metadata__": {"format": "pt"},
              "w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]},
              "b": {"dtype": "I64", "shape": [1], "data_offsets": [16, 24]}}
    raw = json.dumps(header).encode()
    data = len(raw).to_bytes(8, "little") + raw + bytes(range(24))
    layout = safetensors.describe(reader(data), len(data), "m.safetensors")
    assert safetensors.sniff(data) and layout.container == "dict" and layout.metadata == {"format": "pt"}
    assert [(s.name, s.dtype, s.shape, s.offset) for s in layout.arrays] == [
        ("w", np.dtype("<f4"), (2, 2), 8 + len(raw)), ("b", np.dtype("<i8"), (1,), 8 + len(raw) + 16)]


def test_describe_picks_the_format_by_content_and_names_unknown_files():
    np_bytes = saved(np.arange(3))
    assert formats.describe(reader(np_bytes), len(np_bytes), "misnamed.safetensors").format == "npy"
    with pytest.raises(ValueError, match=r"^raw\.bin: not a \.npy, \.npz or \.safetensors file"):
        formats.describe(reader(b"\x00" * 64), 64, "raw.bin")
    assert [module.NAME for module in formats.FORMATS] == ["npy", "npz", "safetensors"]


def test_array_spec_size_is_exact_for_any_shape():
    assert ArraySpec(None, np.dtype("<f8"), (), "C", 0).nbytes == 8
    assert ArraySpec(None, np.dtype("<f8"), (0, 10 ** 30), "C", 0).nbytes == 0
    assert ArraySpec(None, np.dtype("u1"), (2 ** 40, 2 ** 40), "C", 0).nbytes == 2 ** 80


def test_npz_entries_that_share_one_member_are_described_once():
    # A hostile archive: many directory entries naming the bytes of one member with a 300 kB header. Reading
    # each entry's header would cost entries x header; the describer's work must stay linear in the file.
    member = saved(np.zeros(2, [(f"f{i:06d}", "<f8") for i in range(15000)]), version=(2, 0))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("a.npy", member)
    data = bytearray(buf.getvalue())
    end = data.rindex(b"PK\x05\x06")
    central = data.index(b"PK\x01\x02")
    entry = bytes(data[central:end])
    copies = [entry.replace(b"a.npy", f"{i:05d}".encode()) for i in range(200)]
    directory = entry + b"".join(copies)
    tail = bytearray(data[end:])
    tail[8:10] = tail[10:12] = (len(copies) + 1).to_bytes(2, "little")
    tail[12:16] = len(directory).to_bytes(4, "little")
    hostile = bytes(data[:central]) + directory + bytes(tail)
    read = []
    layout = npz.describe(lambda o, n: read.append(n) or hostile[o:o + n], len(hostile), "bomb.npz")
    assert len(layout.arrays) == 201 and all(s.refusal is None for s in layout.arrays)
    assert sum(read) < 3 * len(hostile)


def test_npz_member_offsets_outside_the_file_are_refused_by_name():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("a.npy", saved(np.arange(3)))
    data = bytearray(buf.getvalue())
    central = data.index(b"PK\x01\x02")
    data[central + 42:central + 46] = (0xFFFFFFF0).to_bytes(4, "little")  # the local header's offset
    (spec,) = npz.describe(reader(bytes(data)), len(data), "far.npz").arrays
    assert "far.npz: member 'a.npy': local header offset 4294967280 is outside the file" == spec.refusal


def test_safetensors_null_metadata_is_no_metadata_as_the_reference_reader_has_it():
    raw = json.dumps({"__metadata__": None, "t": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}}).encode()
    data = len(raw).to_bytes(8, "little") + raw + b"\x07"
    layout = safetensors.describe(reader(data), len(data), "null.safetensors")
    assert layout.metadata == {} and [s.name for s in layout.arrays] == ["t"]


@pytest.mark.parametrize("before, after", [(b" ", b""), (b"\n\t\r ", b"  "), (b"", b"    ")])
def test_safetensors_json_whitespace_around_the_header_is_accepted_as_the_reference_reader_does(
        tmp_path, before, after):
    from safetensors.numpy import load_file
    raw = before + json.dumps({"t": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]}}).encode() + after
    path = tmp_path / "ws.safetensors"
    path.write_bytes(len(raw).to_bytes(8, "little") + raw + b"\x07\x08")
    assert load_file(str(path))["t"].tolist() == mmio.load(path)["t"].tolist() == [7, 8]


def test_safetensors_header_limit_is_the_reference_readers_and_parsing_leaves_the_collector_on():
    import gc
    assert safetensors.MAX_HEADER == 100_000_000
    too_long = (100_000_001).to_bytes(8, "little") + b"{"
    with pytest.raises(ValueError, match="larger than the limit"):
        safetensors.describe(reader(too_long), 200_000_000, "big.safetensors")
    raw = b'{"t": {"dtype": "U8", "shape": [1], "data_offsets": [0, 2]}}'
    with pytest.raises(ValueError, match="needs 1 bytes"):
        safetensors.describe(reader(len(raw).to_bytes(8, "little") + raw + b"xx"), len(raw) + 10, "x.safetensors")
    assert gc.isenabled()


@pytest.mark.parametrize("overlap", [1, 2])
def test_safetensors_tensors_overlapping_by_one_byte_are_refused(overlap):
    header = {"a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]},
              "b": {"dtype": "U8", "shape": [4], "data_offsets": [4 - overlap, 8 - overlap]}}
    raw = json.dumps(header).encode()
    data = len(raw).to_bytes(8, "little") + raw + bytes(8 - overlap)  # no gap, nothing after: only the overlap
    with pytest.raises(ValueError, match="^overlap.safetensors: tensor 'b' overlaps another tensor$"):
        safetensors.describe(reader(data), len(data), "overlap.safetensors")
    header["b"]["data_offsets"] = [4, 8]
    raw = json.dumps(header).encode()
    data = len(raw).to_bytes(8, "little") + raw + bytes(8)
    assert [s.name for s in safetensors.describe(reader(data), len(data), "tiled.safetensors").arrays] == ["a", "b"]


def test_safetensors_refusals_name_the_tensor_and_the_cause():
    cases = {
        "entry": ([1], "entry is not an object"),
        "dtype": ({"dtype": "Q9", "shape": [1], "data_offsets": [0, 1]}, "unsupported dtype 'Q9'"),
        "shape": ({"dtype": "U8", "shape": [1.5], "data_offsets": [0, 1]}, r"shape \[1.5\] is not a list of non-"),
        "dims": ({"dtype": "U8", "shape": [1] * 65, "data_offsets": [0, 1]}, "shape has 65 dimensions; numpy allows 64"),
        "offsets": ({"dtype": "U8", "shape": [1], "data_offsets": [1, 0]}, r"data_offsets \[1, 0\] is not"),
        "short": ({"dtype": "F32", "shape": [4], "data_offsets": [0, 8]}, r"F32 \[4\] needs 16 bytes, data_offsets span 8$"),
        "long": ({"dtype": "U8", "shape": [1], "data_offsets": [0, 2]}, r"U8 \[1\] needs 1 bytes, data_offsets span 2$"),
        "missing": ({"dtype": "U8", "shape": [1]}, "data_offsets None is not"),
    }
    for name, (entry, message) in cases.items():
        raw = json.dumps({name: entry}).encode()
        data = len(raw).to_bytes(8, "little") + raw + b"\0"
        with pytest.raises(ValueError, match=f"^bad.safetensors: tensor '{name}': {message}"):
            safetensors.describe(reader(data), len(data), "bad.safetensors")
