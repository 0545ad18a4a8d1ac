"""The bugs the fuzzers found, each a minimal reproducer of the behaviour the contract asks for, kept as a
regression test now that it is fixed (each failed before its fix)."""

import io
import json
import os
import zipfile

import numpy as np
import pytest

import mmio
from conftest import run_python


def safetensors_bytes(header: dict, body: bytes = b"") -> bytes:
    raw = json.dumps(header).encode()
    return len(raw).to_bytes(8, "little") + raw + body


# BUG 1: a safetensors shape numpy cannot make is refused, but by numpy or mmio's mapping code, whose
# ValueError does not name the file (the .npy parser checks the same shapes and names the file).
@pytest.mark.parametrize("shape, body", [([1] * 65, b"\0"),        # more dimensions than numpy allows
                                         ([0, 2**70], b""),        # a dimension past intp (0 bytes of data)
                                         ([2**62, 2**62, 0], b"")],  # a size past intp (0 bytes of data)
                         ids=["65-dims", "dim-past-intp", "size-past-intp"])
@pytest.mark.parametrize("copy", [False, True])
def test_bug1_safetensors_shape_numpy_cannot_make_is_refused_by_name(tmp_path, shape, body, copy):
    path = tmp_path / "shape.safetensors"
    path.write_bytes(safetensors_bytes({"t": {"dtype": "U8", "shape": shape, "data_offsets": [0, len(body)]}}, body))
    with pytest.raises(ValueError, match="shape.safetensors"):
        mmio.load(path, copy=copy)


# BUG 2: numpy writes a field name holding a non-printable astral character (U+E0001, say) with a \U escape
# (repr); mmio's literal parser knows \x, \u and the one-letter escapes only, and refuses the file.
@pytest.mark.parametrize("writer", ["numpy.save", "mmio.create"])
def test_bug2_npy_field_name_with_a_non_printable_astral_character_loads(tmp_path, writer):
    path = tmp_path / "astral.npy"
    dtype = np.dtype([("\U000e0001", "<f8")])
    if writer == "numpy.save":
        np.save(path, np.ones(2, dtype))
    else:
        created = mmio.create(path, 2, dtype)
        del created
    assert np.load(path).dtype == dtype
    assert mmio.load(path).dtype == dtype


# BUG 3: a zip entry with an empty name (numpy loads it as member "") makes mmio.load raise IndexError, from
# zipfile.ZipInfo.is_dir (filename[-1]), called outside the describer's try.
def test_bug3_npz_member_with_an_empty_name_is_not_an_index_error(tmp_path):
    member = io.BytesIO()
    np.save(member, np.arange(3))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z, z.open(zipfile.ZipInfo(""), "w") as f:
        f.write(member.getvalue())
    path = tmp_path / "empty-name.npz"
    path.write_bytes(buf.getvalue())
    with np.load(path) as f:
        assert f[""].tolist() == [0, 1, 2]
    try:
        arrays = mmio.load(path)
    except ValueError as exc:  # a refusal naming the file would meet the contract; loading it is better
        assert "empty-name.npz" in str(exc)
    else:
        assert arrays[""].tolist() == [0, 1, 2]


# BUG 4: a hostile .npy header of 2 MiB (mmio accepts up to 4 MiB; numpy refuses over 10 kB) is tokenized whole
# into a list of Python tuples before the parser refuses it: ~70 bytes of memory and ~0.5 µs per header byte.
# Run in a child interpreter, so its memory is measured alone and freed.
@pytest.mark.not_under_sanitizer  # ASan quarantines freed memory: peak RSS measures ASan, not mmio
@pytest.mark.parametrize("text", ["'[' * n", "'(' + '1,' * (n // 2) + ')'"], ids=["brackets", "long-tuple"])
def test_bug4_large_hostile_npy_header_is_refused_in_bounded_memory(tmp_path, text):
    proc = run_python(f"""
        import sys, resource
        sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r})
        import mmio
        from fuzzlib import reset_peak_rss, rss
        n = 2 << 20
        text = ({text}).encode()
        body = text + b" " * (-(12 + len(text) + 1) % 64) + b"\\n"
        path = {str(tmp_path / "big.npy")!r}
        with open(path, "wb") as f:
            f.write(b"\\x93NUMPY\\x02\\x00" + len(body).to_bytes(4, "little") + body)
        del text, body
        reset_peak_rss()
        before = rss()[0]
        cpu = resource.getrusage(resource.RUSAGE_SELF).ru_utime
        try:
            mmio.load(path)
        except ValueError as exc:
            assert "big.npy" in str(exc)
        cpu = resource.getrusage(resource.RUSAGE_SELF).ru_utime - cpu
        print(f"{{cpu:.2f}}", (rss()[1] - before) >> 20)
    """)
    cpu, grown_mib = proc.stdout.split()
    assert int(grown_mib) < 64 and float(cpu) < 1, f"peak RSS grew {grown_mib} MiB and {cpu} s of CPU went " \
                                                   "to refuse a 2 MiB file"


# BUG 5: npz.describe parses a member once per distinct (header_offset, compress_size, compress_type,
# flag_bits), so directory entries naming the same bytes but each with another compress_size (or flag bit)
# parse the member's .npy header again and again: work grows as entries x header size, not with the file.
# A 1.4 MB archive of one member with a 1 MB header and 20 such entries takes ~5 s of CPU; 200 take ~50 s.
@pytest.mark.parametrize("field", ["compress_size", "flag_bits"])
def test_bug5_npz_entries_sharing_a_member_are_described_in_linear_work(field):
    from mmio.formats import npz
    member = io.BytesIO()
    np.lib.format.write_array(member, np.zeros(2, [(f"f{i:05d}", "<f8") for i in range(1500)]), version=(2, 0))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("a.npy", member.getvalue())
    data = bytearray(buf.getvalue())
    end, central = data.rindex(b"PK\x05\x06"), data.index(b"PK\x01\x02")
    entry = bytes(data[central:end])
    copies = []
    for i in range(1, 31):
        copy = bytearray(entry.replace(b"a.npy", b"%05d" % i))
        if field == "compress_size":  # still inside the file: the directory follows the member
            copy[20:24] = (int.from_bytes(entry[20:24], "little") + i).to_bytes(4, "little")
        else:  # bits zipfile ignores
            copy[8:10] = (i << 1 & 0x7E).to_bytes(2, "little")
        copies.append(bytes(copy))
    directory = entry + b"".join(copies)
    tail = bytearray(data[end:])
    tail[8:10] = tail[10:12] = (len(copies) + 1).to_bytes(2, "little")
    tail[12:16] = len(directory).to_bytes(4, "little")
    hostile = bytes(data[:central]) + directory + bytes(tail)
    read = []
    layout = npz.describe(lambda o, n: read.append(n) or hostile[o:o + n], len(hostile), "bomb.npz")
    assert len(layout.arrays) == 31
    assert sum(read) < 3 * len(hostile), f"read {sum(read)} bytes of a {len(hostile)}-byte file"
