"""Structure-aware strategies: valid .npy, .npz and safetensors files, then the same files made hostile.

Valid files come from the real writers (``numpy.lib.format.write_array``, ``numpy.savez``, ``zipfile``,
``safetensors.numpy.save``) and from hand-written headers numpy would also accept. Hostile files are built
from them: header fields replaced with boundary values, zip directories rewritten field by field, JSON
headers tampered with, and bytes flipped, cut and spliced.
"""

from __future__ import annotations

import io
import json
import struct
import warnings
import zipfile
from dataclasses import dataclass, field

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

MAX_ARRAY_BYTES = 2048

# ---- dtypes and arrays ------------------------------------------------------------------------

FIELD_NAMES = st.one_of(
    st.text(alphabet="abxyz_0'\"\\ ", min_size=1, max_size=4),
    st.text(min_size=1, max_size=4),  # any code point: latin-1, astral, non-printable
)

SCALAR_DTYPES = st.one_of(
    hnp.boolean_dtypes(),
    hnp.integer_dtypes(endianness="?"),
    hnp.unsigned_integer_dtypes(endianness="?"),
    hnp.floating_dtypes(endianness="?", sizes=(16, 32, 64, 128)),
    hnp.complex_number_dtypes(endianness="?"),
    hnp.datetime64_dtypes(endianness="?"),
    hnp.timedelta64_dtypes(endianness="?"),
    hnp.byte_string_dtypes(endianness="?", min_len=1, max_len=6),
    hnp.unicode_string_dtypes(endianness="?", min_len=1, max_len=3),
    st.integers(1, 12).map(lambda n: np.dtype(f"V{n}")),
)


@st.composite
def structured_dtypes(draw, inner=SCALAR_DTYPES, depth=2):
    """Structured dtypes: unusual names, titles, sub-arrays, padding between and after fields, nesting."""
    names = draw(st.lists(FIELD_NAMES, min_size=1, max_size=4, unique=True))
    formats, offsets = [], []
    offset = 0
    for _ in names:
        sub = draw(structured_dtypes(inner, depth - 1) if depth > 0 and draw(st.booleans()) and
                   draw(st.booleans()) else inner)
        if draw(st.integers(0, 4)) == 0:
            sub = np.dtype((sub, draw(st.sampled_from([(2,), (1, 3), (2, 1)]))))
        offset += draw(st.sampled_from([0, 0, 0, 1, 3, 8]))  # padding before the field
        formats.append(sub)
        offsets.append(offset)
        offset += sub.itemsize
    itemsize = offset + draw(st.sampled_from([0, 0, 1, 7]))
    spec = {"names": names, "formats": formats, "offsets": offsets, "itemsize": itemsize}
    if draw(st.integers(0, 5)) == 0:
        titles = [f"title {i}" for i in range(len(names))]
        assume(not set(titles) & set(names))
        spec["titles"] = titles
    try:
        dtype = np.dtype(spec)
    except (ValueError, TypeError):
        assume(False)
    assume(0 < dtype.itemsize <= 512)
    return dtype


ANY_DTYPES = st.one_of(SCALAR_DTYPES, SCALAR_DTYPES, structured_dtypes())


def shape_fitting(shape, itemsize, limit=MAX_ARRAY_BYTES):
    shape = list(shape)
    while shape and itemsize * int(np.prod([max(d, 1) for d in shape])) > limit:
        shape[shape.index(max(shape))] //= 2
    return tuple(shape)


@st.composite
def arrays(draw, dtypes=ANY_DTYPES, max_dims=4):
    """An array with any bytes in it (NaN payloads, invalid code points...), in C or Fortran order.

    The array is a view of a bytes object, every byte of it defined: numpy's copies of structured items
    skip the padding and x87 long doubles carry 6 undefined bytes, and a generated file whose bytes vary
    from run to run would make hypothesis's replays differ (and compressed members change length).
    """
    dtype = draw(dtypes)
    shape = shape_fitting(draw(hnp.array_shapes(min_dims=0, max_dims=max_dims, min_side=0, max_side=6)),
                          dtype.itemsize)
    count = int(np.prod(shape))
    fill = draw(st.sampled_from(["random", "random", "zeros", "ones"]))
    n = count * dtype.itemsize
    raw = (np.random.default_rng(draw(st.integers(0, 2**32 - 1))).bytes(n) if fill == "random"
           else (b"\0" if fill == "zeros" else b"\xff") * n)
    flat = np.frombuffer(raw, dtype=dtype, count=count)
    order = draw(st.sampled_from("CCFT"))
    if order == "F":
        return flat.reshape(shape, order="F")
    if order == "T":
        return flat.reshape(shape[::-1]).T  # a transposed view: F-contiguous, C too when at most 1-D
    return flat.reshape(shape)


def memory(array: np.ndarray) -> bytes:
    """The bytes under an array made by :func:`arrays` (in its memory order, padding included)."""
    base = array
    while not isinstance(base, bytes):
        base = base.base
    assert len(base) == array.nbytes
    return base


# ---- .npy ------------------------------------------------------------------------------------

def write_npy(array, version=None) -> bytes:
    """What ``numpy.save`` writes for ``array``: numpy's header, then the array's memory exactly."""
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            np.lib.format.write_array(buf, array, version=version, allow_pickle=False)
        except ValueError:  # a header this version cannot encode (utf-8 names in 1.0/2.0)
            buf = io.BytesIO()
            np.lib.format.write_array(buf, array, version=None, allow_pickle=False)
    written = buf.getvalue()
    return written[:len(written) - array.nbytes] + memory(array)


@st.composite
def npy_files(draw, dtypes=ANY_DTYPES):
    """``(bytes, array)``: a .npy file numpy wrote (any version) and the array it holds."""
    array = draw(arrays(dtypes))
    version = draw(st.sampled_from([None, (1, 0), (2, 0), (3, 0)]))
    return write_npy(array, version), array


def npy_prefix(version, length) -> bytes:
    major, minor = version
    size = 2 if major == 1 else 4
    return b"\x93NUMPY" + bytes([major & 0xFF, minor & 0xFF]) + (length % (1 << 8 * size)).to_bytes(size, "little")


@st.composite
def npy_handwritten(draw):
    """``(bytes, array)``: a header numpy accepts but does not write: key order, quotes, spacing, padding."""
    array = draw(arrays())
    descr = np.lib.format.dtype_to_descr(array.dtype)
    fortran = bool(array.flags.f_contiguous and not array.flags.c_contiguous)
    sp = draw(st.sampled_from(["", " ", "  ", "\t", "\n"]))
    q = draw(st.sampled_from(["'", '"']))
    dims = [str(d) for d in array.shape]
    shape = "(" + f",{sp}".join(dims) + ("," if len(dims) == 1 else draw(st.sampled_from(["", ","]))) + ")"
    if isinstance(descr, str):
        descr_text = q + descr + q
    else:
        descr_text = repr(descr)
    items = [(f"{q}descr{q}", descr_text), (f"{q}fortran_order{q}", repr(fortran)), (f"{q}shape{q}", shape)]
    items = draw(st.permutations(items))
    trailing = draw(st.sampled_from(["", ",", ", "]))
    text = "{" + sp + f",{sp}".join(f"{k}:{sp}{v}" for k, v in items) + trailing + sp + "}"
    version = draw(st.sampled_from([(1, 0), (2, 0), (3, 0)]))
    try:
        body = text.encode("utf-8" if version == (3, 0) else "latin-1")
    except UnicodeEncodeError:
        version, body = (3, 0), text.encode("utf-8")
    prefix = 10 if version == (1, 0) else 12
    align = draw(st.sampled_from([64, 64, 16, 1]))
    body += b" " * (-(prefix + len(body) + 1) % align) + draw(st.sampled_from([b"\n", b"\n", b" ", b""]))
    if version == (1, 0) and len(body) > 0xFFFF:
        version = (2, 0)
    return npy_prefix(version, len(body)) + body + memory(array), array


INTERESTING_INTS = [0, 1, 2, 3, 7, 8, 63, 64, 255, 256, 4095, 4096, 2**15, 2**16 - 1, 2**16, 2**22, 2**22 + 1,
                    2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**62, 2**63 - 1, 2**63, 2**64 - 1, 2**64,
                    10**19 - 1, 10**19, 10**30, -1, -(2**63)]

DIM_TEXT = st.one_of(
    st.integers(0, 8).map(str),
    st.sampled_from(INTERESTING_INTS).map(str),
    st.sampled_from(["9" * 40, "3L", "0L", "True", "False", "1.0", "1e3", "0x10", "1_0", "-0", "+1", "None",
                     "'3'", "(1,)", "[2]", "0003", "00", "1j", "b'1'", "{1}", "--1", ""]),
)

DESCR_TEXT = st.one_of(
    st.sampled_from(["'<f8'", "'|u1'", "'>i2'", "'<U3'", "'|S2'", "'|V3'", "'|b1'", "'<M8[ns]'", "'<c16'"]),
    st.sampled_from(["'<q99'", "'|O'", "'O'", "'|V0'", "'|S0'", "'<U0'", "'<M8[xx]'", "'<f8 '", "'f8,i4'",
                     "'(2,3)f8'", "'(1000000000,)f8'", "'(9223372036854775807,)u1'", "'V9223372036854775807'",
                     "'a'", "''", "'\\xff'", "'é'", "'\\U0001f600'", "'\\N{BULLET}'", "'\\0'", "'\\x00f8'",
                     "'<f8\\x00'", "'=f8'", "'@f8'", "'float64'", "'int'", "'|V'", "'<m8'", "'<M8[3ms]'",
                     "b'<f8'", "\"<f8\"", "'''<f8'''", "'\\'<f8'", "'<f8' '<f8'", "42", "None", "True", "()",
                     "[]", "{}", "('<f8', (2, 3))", "('<f8', (-1,))", "('<f8', 9223372036854775807)",
                     "('<f8', (2**70,))", "('<f8',)", "('<f8', (2,), 3)", "[('a', '<f8'), ('a', '<i4')]",
                     "[('', '|V4'), ('b', '<f8')]", "[('', '|V0')]", "[(('t', 'n'), '<f8')]", "[(('n', 'n'), '<f8')]",
                     "[('a', '<f8', (2,))]", "[('a', '<f8', (-2,))]", "[('a', '<f8', 'x')]", "[('a',)]",
                     "[(1, '<f8')]", "[('a', '|O')]", "[('a', [('b', '|O')])]", "[('é', '<i4')]",
                     "[('\\U000e0001', '<i4')]", "[('a', '<i4'), ('b', '>i4')]", "[('a', '<f8', (1000000000,))]",
                     "[('a', '<f8', ()), ]", "[['a', '<f8']]", "[('a', '<f8'), 1]"]),
    st.integers(0, 40).map(lambda k: "[" * k + "('a', '<f8')" + "]" * k),
    st.sampled_from([31, 32, 33, 34, 200, 5000]).map(lambda k: "[" * k + "]" * k),
    st.sampled_from([31, 32, 33, 200]).map(lambda k: "[('a', " * k + "'<f8'" + ")]" * k),
)

LITERAL_ATOMS = st.one_of(DIM_TEXT, DESCR_TEXT, st.sampled_from(
    ["'x'", "\"\"", "'\\n'", "'\\''", "'\\\\'", "'\\q'", "'\\u00e9'", "'\\ud800'", "'unterminated", "\"x'",
     "__import__('os')", "eval('1')", "1 + 1", "-", ",", ":", "(", ")", "[", "]", "{", "}", "...", "not"]))

LITERALS = st.recursive(
    LITERAL_ATOMS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4).map(lambda xs: "(" + ", ".join(xs) + ",)"),
        st.lists(inner, max_size=4).map(lambda xs: "[" + ", ".join(xs) + "]"),
        st.lists(st.tuples(inner, inner), max_size=3).map(lambda kv: "{" + ", ".join(f"{k}: {v}" for k, v in kv) + "}"),
    ),
    max_leaves=8,
)


@st.composite
def shape_text(draw):
    n = draw(st.one_of(st.integers(0, 4), st.sampled_from([63, 64, 65, 1000])))
    if n > 8:
        dims = [draw(st.sampled_from(["1", "0", "2"]))] * n
    else:
        dims = [draw(DIM_TEXT) for _ in range(n)]
    return "(" + ", ".join(dims) + ("," if n == 1 or draw(st.booleans()) else "") + ")"


@st.composite
def hostile_npy(draw):
    """A .npy file whose header fields are hostile: boundary dims, strange descrs, keys missing or doubled,
    deep nesting, non-ASCII text, lengths that lie, versions that do not exist."""
    base_array = draw(arrays(SCALAR_DTYPES, max_dims=2))
    descr_ok = draw(st.integers(0, 2)) == 0
    shape_ok = draw(st.integers(0, 2)) == 0
    descr = (repr(np.lib.format.dtype_to_descr(base_array.dtype)) if descr_ok
             else draw(st.one_of(DESCR_TEXT, DESCR_TEXT, LITERALS)))
    shape = (repr(base_array.shape) if shape_ok else draw(st.one_of(shape_text(), shape_text(), LITERALS)))
    fortran = draw(st.sampled_from(["False", "True", "False", "0", "1", "None", "'True'", "true", "()", "Fals"]))
    items = [("'descr'", descr), ("'fortran_order'", fortran), ("'shape'", shape)]
    edit = draw(st.sampled_from(["none", "none", "drop", "extra", "duplicate", "rename", "not-a-dict"]))
    if edit == "drop":
        items.pop(draw(st.integers(0, 2)))
    elif edit == "extra":
        items.insert(draw(st.integers(0, 3)), (draw(st.sampled_from(["'x'", "1", "None", "('descr',)", "'Shape'"])),
                                               draw(LITERALS)))
    elif edit == "duplicate":
        i = draw(st.integers(0, 2))
        items.insert(draw(st.integers(0, 3)), (items[i][0], draw(st.one_of(LITERALS, DESCR_TEXT, shape_text()))))
    elif edit == "rename":
        i = draw(st.integers(0, 2))
        items[i] = (draw(st.sampled_from(["'déscr'", "'\\x64escr'", "\"descr\"", "b'descr'", "'descr '",
                                          "'shap\\u0065'", "descr"])), items[i][1])
    if draw(st.booleans()):
        items = draw(st.permutations(items))
    text = "{" + ", ".join(f"{k}: {v}" for k, v in items) + draw(st.sampled_from([", }", "}", ",}", " ", ""]))
    if edit == "not-a-dict":
        text = draw(LITERALS)
    version = draw(st.sampled_from([(1, 0), (1, 0), (2, 0), (3, 0), (3, 0), (0, 0), (1, 1), (4, 0), (255, 255)]))
    encoding = "utf-8" if version == (3, 0) or draw(st.integers(0, 9)) == 0 else "latin-1"
    try:
        body = text.encode(encoding)
    except UnicodeEncodeError:
        body = text.encode("utf-8")
    if draw(st.booleans()):
        body += draw(st.sampled_from([b"\xff", b"\xc3", b"\x00", b"\xed\xa0\x80", "é".encode("latin-1")]))
    prefix = 10 if version[0] == 1 else 12
    body += b" " * (-(prefix + len(body) + 1) % 64) + b"\n"
    length = len(body)
    lie = draw(st.sampled_from(["exact"] * 6 + ["short", "long", "interesting"]))
    if lie == "short":
        length -= draw(st.integers(1, 70))
    elif lie == "long":
        length += draw(st.integers(1, 70))
    elif lie == "interesting":
        length = draw(st.sampled_from(INTERESTING_INTS))
    data = memory(base_array) if descr_ok and shape_ok else b""
    tail = draw(st.sampled_from(["data", "data", "none", "short", "long"]))
    if tail == "none":
        data = b""
    elif tail == "short":
        data = data[:len(data) // 2]
    elif tail == "long" or not data:
        data += bytes(draw(st.sampled_from([1, 8, 64, 256])))
    return npy_prefix(version, max(length, 0)) + body + data


# ---- byte-level mutation ---------------------------------------------------------------------

SPLICES = [b"\x00", b"\xff", b"'", b'"', b"\\", b"(", b")", b"[", b"]", b"{", b"}", b",", b":", b" ", b"\n", b"9" * 25,
           b"-1", b"True", b"None", b"L", b"\\U", b"\\x", b"\xc3\xa9", b"\xe9", b"PK\x03\x04", b"PK\x01\x02",
           b"PK\x05\x06", b"PK\x06\x06", b"PK\x06\x07", b"\x93NUMPY", b"\xff" * 4, b"\xff" * 8]


@st.composite
def mutated(draw, base: bytes, hot: int = 256):
    """``base`` with 1-4 random edits, most of them in its first ``hot`` bytes (where headers live)."""
    data = bytearray(base)
    for _ in range(draw(st.integers(1, 4))):
        if not data:
            data += draw(st.binary(min_size=1, max_size=16))
            continue
        limit = min(len(data), hot) if draw(st.integers(0, 3)) else len(data)
        pos = draw(st.integers(0, max(limit - 1, 0)))
        op = draw(st.sampled_from(["flip", "flip", "byte", "splice", "insert", "delete", "truncate", "extend",
                                   "int"]))
        if op == "flip":
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "byte":
            data[pos] = draw(st.sampled_from([0, 1, 0x7F, 0x80, 0xFF, ord("'"), ord(","), ord("9"), ord("{")]))
        elif op == "splice":
            chunk = draw(st.sampled_from(SPLICES))
            data[pos:pos + len(chunk)] = chunk
        elif op == "insert":
            data[pos:pos] = draw(st.sampled_from(SPLICES) | st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del data[pos:pos + draw(st.integers(1, 16))]
        elif op == "truncate":
            del data[draw(st.integers(0, len(data) - 1)):]
        elif op == "extend":
            data += draw(st.binary(max_size=64)) if draw(st.booleans()) else bytes(draw(st.integers(1, 4096)))
        elif op == "int":
            width = draw(st.sampled_from([2, 4, 8]))
            value = draw(st.sampled_from(INTERESTING_INTS)) % (1 << 8 * width)
            data[pos:pos + width] = value.to_bytes(width, "little")
    return bytes(data)


# ---- .npz ------------------------------------------------------------------------------------

MEMBER_NAMES = st.one_of(
    st.sampled_from(["a.npy", "b.npy", "a", "", ".npy", "dir/", "dir/x.npy", "x.npy.npy", "../../etc/x.npy",
                     "ü.npy", "\U0001f600.npy", "a b.npy", "x" * 300 + ".npy", "NUL\x00.npy", "c.npz", "C.NPY"]),
    st.text(max_size=6).map(lambda s: s + ".npy"),
)
COMPRESSION = st.sampled_from([zipfile.ZIP_STORED] * 6 + [zipfile.ZIP_DEFLATED, zipfile.ZIP_DEFLATED,
                                                          zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])


@st.composite
def zip_members(draw):
    """``[(name, payload, array or None, compress_type, force_zip64)]``."""
    members = []
    for _ in range(draw(st.integers(0, 4))):
        name = draw(MEMBER_NAMES)
        kind = draw(st.sampled_from(["npy", "npy", "npy", "junk", "empty"]))
        if kind == "npy":
            payload, array = draw(npy_files())
        else:
            payload, array = (draw(st.binary(max_size=64)) if kind == "junk" else b""), None
        members.append((name, payload, array, draw(COMPRESSION), draw(st.integers(0, 3)) == 0))
    return members


def write_zip(members, comment=b"") -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate names
        with zipfile.ZipFile(buf, "w") as z:
            for name, payload, _, compress, zip64 in members:
                info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
                info.compress_type = compress
                with z.open(info, "w", force_zip64=zip64) as f:
                    f.write(payload)
            z.comment = comment
    return buf.getvalue()


def expected_members(members) -> dict:
    """The arrays a reader must give for the stored .npy members whose name is unambiguous."""
    names = [zipfile.ZipInfo(n).filename for n, *_ in members]  # zipfile cuts a name at its first NUL
    keys = [n[:-4] if n.endswith(".npy") else n for n in names]
    expected = {}
    for (_, payload, array, compress, _), name, key in zip(members, names, keys):
        if (array is not None and compress == zipfile.ZIP_STORED and keys.count(key) == 1
                and not name.endswith("/")):
            expected[key] = array
    return expected


@st.composite
def npz_files(draw):
    """``(bytes, expected)``: an archive written by numpy.savez or zipfile, with stored, compressed,
    zip64-extended, empty-named and non-.npy members; ``expected`` holds the arrays a reader must give."""
    if draw(st.integers(0, 3)) == 0:
        keys = st.text(max_size=5).filter(lambda k: k not in ("file", "allow_pickle") and "\x00" not in k)
        arrays_ = draw(st.dictionaries(keys, arrays(), max_size=3))
        buf = io.BytesIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            np.savez(buf, **arrays_)
        return buf.getvalue(), {k: v for k, v in arrays_.items() if not (k.endswith(".npy") and k[:-4] in arrays_)}
    members = draw(zip_members())
    comment = draw(st.sampled_from([b"", b"", b"a comment"]))
    data = write_zip(members, comment)
    if draw(st.integers(0, 5)) == 0:  # a self-extracting archive: bytes before the first member
        return draw(st.binary(min_size=1, max_size=32)) + data, None
    return data, expected_members(members)


CENTRAL = struct.Struct("<4s6H3I5H2I")
LOCAL = struct.Struct("<4s5H3I2H")
EOCD = struct.Struct("<4s4H2IH")
ZIP64_EOCD = struct.Struct("<4sQ2H2I4Q")
ZIP64_LOCATOR = struct.Struct("<4sIQI")
CENTRAL_FIELDS = ["sig", "made", "needed", "flags", "method", "time", "date", "crc", "csize", "usize", "name_len",
                  "extra_len", "comment_len", "disk", "iattr", "eattr", "offset"]
LOCAL_FIELDS = ["sig", "needed", "flags", "method", "time", "date", "crc", "csize", "usize", "name_len", "extra_len"]


@dataclass
class Entry:
    fields: dict
    name: bytes
    extra: bytes
    comment: bytes = b""
    raw_lengths: bool = False  # keep the length fields as set, even if they lie


@dataclass
class ZipModel:
    """An archive as the parts a hostile writer would forge: member bytes, directory entries, end records."""

    body: bytearray
    entries: list
    comment: bytes = b""
    zip64: dict | None = None      # ZIP64 end record fields, or None for none
    eocd: dict = field(default_factory=dict)  # overrides of the end record's fields

    @classmethod
    def parse(cls, data: bytes, comment: bytes) -> "ZipModel":
        end = len(data) - EOCD.size - len(comment)
        sig, _, _, count, _, cd_size, cd_offset, _ = EOCD.unpack_from(data, end)
        assert sig == b"PK\x05\x06"
        entries, pos = [], cd_offset
        for _ in range(count):
            values = CENTRAL.unpack_from(data, pos)
            fields = dict(zip(CENTRAL_FIELDS, values))
            pos += CENTRAL.size
            name = data[pos:pos + fields["name_len"]]
            pos += fields["name_len"]
            extra = data[pos:pos + fields["extra_len"]]
            pos += fields["extra_len"]
            comment_ = data[pos:pos + fields["comment_len"]]
            pos += fields["comment_len"]
            entries.append(Entry(fields, name, extra, comment_))
        return cls(bytearray(data[:cd_offset]), entries, comment)

    def serialize(self) -> bytes:
        directory = bytearray()
        for e in self.entries:
            f = dict(e.fields)
            if not e.raw_lengths:
                f["name_len"], f["extra_len"], f["comment_len"] = len(e.name), len(e.extra), len(e.comment)
            directory += CENTRAL.pack(*(f[k] & (0xFFFFFFFF if k in ("crc", "csize", "usize", "eattr", "offset")
                                                else 0xFFFF) if k != "sig" else f[k] for k in CENTRAL_FIELDS))
            directory += e.name + e.extra + e.comment
        out = bytearray(self.body)
        cd_offset = len(out)
        out += directory
        n = len(self.entries)
        if self.zip64 is not None:
            z = {"sig": b"PK\x06\x06", "size": 44, "made": 45, "needed": 45, "disk": 0, "disk_cd": 0,
                 "n_disk": n, "n_total": n, "cd_size": len(directory), "cd_offset": cd_offset, **self.zip64}
            where = len(out)
            widths = {"made": 0xFFFF, "needed": 0xFFFF, "disk": 0xFFFFFFFF, "disk_cd": 0xFFFFFFFF}
            out += ZIP64_EOCD.pack(z["sig"], *(z[k] & widths.get(k, (1 << 64) - 1) for k in (
                "size", "made", "needed", "disk", "disk_cd", "n_disk", "n_total", "cd_size", "cd_offset")))
            out += ZIP64_LOCATOR.pack(b"PK\x06\x07", 0, self.zip64.get("locator", where), 1)
        e = {"sig": b"PK\x05\x06", "disk": 0, "disk_cd": 0, "n_disk": n, "n_total": n, "cd_size": len(directory),
             "cd_offset": cd_offset, "comment_len": len(self.comment), **self.eocd}
        out += EOCD.pack(e["sig"], e["disk"] & 0xFFFF, e["disk_cd"] & 0xFFFF, e["n_disk"] & 0xFFFF,
                         e["n_total"] & 0xFFFF, e["cd_size"] & 0xFFFFFFFF, e["cd_offset"] & 0xFFFFFFFF,
                         e["comment_len"] & 0xFFFF)
        return bytes(out + self.comment)


def zip64_extra(*values) -> bytes:
    return struct.pack("<HH", 1, 8 * len(values)) + b"".join(struct.pack("<Q", v % (1 << 64)) for v in values)


@st.composite
def hostile_npz(draw):
    """An archive with a forged directory: sizes, offsets, methods, flags and names that lie, ZIP64 extra
    fields and end records with true or bogus values, entries doubled hundreds of times, local headers
    that disagree with the directory, then optionally bytes flipped."""
    members = draw(zip_members().filter(bool))
    comment = draw(st.sampled_from([b"", b"xyz"]))
    model = ZipModel.parse(write_zip(members, comment), comment)
    size = len(model.body)
    offsets = [e.fields["offset"] for e in model.entries]
    values = st.one_of(st.sampled_from(INTERESTING_INTS), st.sampled_from(offsets),
                       st.integers(0, size + 64), st.sampled_from([size, size - 1, size + 1, 0xFFFFFFFF, 0xFFFF]))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["field", "field", "field", "name", "duplicate", "many", "drop", "zip64",
                                   "extra", "local", "eocd", "zip64-end", "body"]))
        if not model.entries and op not in ("eocd", "zip64-end", "body"):
            continue
        i = draw(st.integers(0, max(len(model.entries) - 1, 0)))
        entry = model.entries[i] if model.entries else None
        if op == "field":
            name = draw(st.sampled_from(["flags", "method", "crc", "csize", "usize", "offset", "offset", "csize",
                                         "name_len", "extra_len", "comment_len", "disk", "needed"]))
            if name == "method":
                entry.fields[name] = draw(st.sampled_from([0, 8, 12, 14, 9, 93, 99, 0xFFFF]))
            elif name == "flags":
                entry.fields[name] = draw(st.sampled_from([0, 1, 8, 0x800, 0x801, 0x40, 0x2000, 0xFFFF]))
            else:
                entry.fields[name] = draw(values)
                entry.raw_lengths = entry.raw_lengths or name.endswith("_len")
        elif op == "name":
            raw = draw(st.sampled_from([b"", b".npy", b"a.npy", b"dir/", b"\xff\xfe.npy", b"\xc3\xa9.npy",
                                        b"x" * 1000, b"a\x00b.npy"]) | st.sampled_from([e.name for e in model.entries]))
            entry.name = raw
            if draw(st.booleans()):
                entry.fields["flags"] |= 0x800  # the name is declared utf-8
        elif op == "duplicate":
            copy = Entry(dict(entry.fields), draw(st.sampled_from([entry.name, entry.name + b"2", b"z.npy"])),
                         entry.extra, entry.comment, entry.raw_lengths)
            model.entries.insert(draw(st.integers(0, len(model.entries))), copy)
        elif op == "many":  # a directory of many entries naming the same bytes (work must stay linear)
            k = draw(st.sampled_from([50, 300, 1000]))
            model.entries += [Entry(dict(entry.fields), b"m%d.npy" % j, entry.extra) for j in range(k)]
        elif op == "drop":
            model.entries.pop(i)
        elif op == "zip64":  # the 32-bit fields say "see the ZIP64 extra field", which holds true or bogus values
            f = entry.fields
            true = [f["usize"], f["csize"], f["offset"]]
            chosen = [v if draw(st.integers(0, 2)) else draw(values) for v in true]
            which = draw(st.sampled_from([(0, 1, 2), (0, 1), (2,), (1,), (0, 1, 2, 3)]))
            for j, key in enumerate(("usize", "csize", "offset")):
                if j in which:
                    f[key] = 0xFFFFFFFF
            extra_values = [chosen[j] for j in which if j < 3] + ([0] if 3 in which else [])
            extra = zip64_extra(*extra_values)
            if draw(st.integers(0, 4)) == 0:
                extra = extra[:draw(st.integers(0, len(extra) - 1))]  # a truncated extra field
            entry.extra = extra + (entry.extra if draw(st.booleans()) else b"")
        elif op == "extra":
            entry.extra += draw(st.sampled_from([b"\x01\x00\x08\x00", b"\x01\x00\xff\xff", b"\xff\xff\x00\x00",
                                                 b"\x01\x00\x00\x00", b"\x55\x54\x05\x00\x01\x00\x00\x00\x00",
                                                 b"\x01"]) | st.binary(max_size=12))
        elif op == "local":
            at = entry.fields["offset"]
            if 0 <= at <= len(model.body) - LOCAL.size:
                local = dict(zip(LOCAL_FIELDS, LOCAL.unpack_from(model.body, at)))
                name = draw(st.sampled_from(["name_len", "extra_len", "method", "flags", "csize", "usize", "sig"]))
                local[name] = (draw(st.sampled_from([b"PK\x03\x03", b"PK\x01\x02"])) if name == "sig"
                               else draw(values) & (0xFFFF if name in ("name_len", "extra_len", "method", "flags")
                                                    else 0xFFFFFFFF))
                model.body[at:at + LOCAL.size] = LOCAL.pack(*(local[k] for k in LOCAL_FIELDS))
        elif op == "eocd":
            key = draw(st.sampled_from(["n_disk", "n_total", "cd_size", "cd_offset", "disk", "comment_len"]))
            model.eocd[key] = draw(values)
        elif op == "zip64-end":
            model.zip64 = {}
            for key in draw(st.lists(st.sampled_from(["n_disk", "n_total", "cd_size", "cd_offset", "size",
                                                      "locator", "disk"]), max_size=2)):
                model.zip64[key] = draw(values) % (1 << 64)
            for key in draw(st.lists(st.sampled_from(["n_total", "cd_size", "cd_offset"]), max_size=3)):
                model.eocd[key] = 0xFFFFFFFF if key != "n_total" else 0xFFFF  # "see the ZIP64 record"
        elif op == "body":
            model.body = bytearray(draw(mutated(bytes(model.body), hot=len(model.body))))
    data = model.serialize()
    if draw(st.integers(0, 4)) == 0:
        data = draw(mutated(data, hot=len(data)))
    return data


# ---- safetensors -------------------------------------------------------------------------------

ST_DTYPES = {"BOOL": "?", "U8": "u1", "I8": "i1", "U16": "<u2", "I16": "<i2", "F16": "<f2", "U32": "<u4",
             "I32": "<i4", "F32": "<f4", "U64": "<u8", "I64": "<i8", "F64": "<f8", "C64": "<c8"}
TENSOR_NAMES = st.one_of(st.text(alphabet="abw._0", max_size=6), st.text(max_size=4),
                         st.sampled_from(["", "__metadata", "é", "\U0001f600", "a" * 200, "\x00", "\\u0000"]))


@st.composite
def tensors(draw):
    code = draw(st.sampled_from(sorted(ST_DTYPES)))
    dtype = np.dtype(ST_DTYPES[code])
    shape = shape_fitting(draw(hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=6)), dtype.itemsize)
    n = int(np.prod(shape)) * dtype.itemsize
    raw = np.random.default_rng(draw(st.integers(0, 2**32 - 1))).bytes(n)
    if code == "BOOL":
        raw = bytes(b & 1 for b in raw)
    return code, np.frombuffer(raw, dtype=dtype).reshape(shape)


METADATA = st.one_of(st.none(), st.dictionaries(st.text(max_size=4), st.text(max_size=6), max_size=3))


def write_safetensors(header: dict, data: bytes, *, ensure_ascii=True, pad=0, length=None, encoding="utf-8") -> bytes:
    text = json.dumps(header, ensure_ascii=ensure_ascii, separators=(",", ":"))
    raw = text.encode(encoding, "surrogatepass") + b" " * pad
    return (len(raw) if length is None else length).to_bytes(8, "little") + raw + data


@st.composite
def safetensors_parts(draw):
    """``(header dict, data bytes, expected arrays)`` of a valid file, tensors laid out in any order."""
    named = draw(st.dictionaries(TENSOR_NAMES.filter(lambda s: s != "__metadata__"), tensors(), max_size=4))
    order = draw(st.permutations(list(named)))
    header, data = {}, b""
    for name in order:
        code, array = named[name]
        raw = array.tobytes()
        header[name] = {"dtype": code, "shape": list(array.shape), "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    header = dict(draw(st.permutations(list(header.items()))))
    metadata = draw(METADATA)
    if metadata is not None or draw(st.booleans()):
        header = {"__metadata__": metadata, **header}
    return header, data, {name: array for name, (_, array) in named.items()}


@st.composite
def safetensors_files(draw):
    """``(bytes, expected)``: a valid file, from the reference writer or written here (key order, offsets in
    any order, padding, non-ASCII names raw or escaped)."""
    header, data, expected = draw(safetensors_parts())
    if draw(st.integers(0, 2)) == 0:
        from safetensors.numpy import save
        metadata = header.get("__metadata__")
        written = save({k: v.copy(order="C") for k, v in expected.items()}, metadata=metadata)
        try:
            json.loads(written[8:8 + int.from_bytes(written[:8], "little")])
            return written, expected
        except ValueError:
            pass  # safetensors 0.8.0 writes '{},"__metadata__":{}}' for no tensors and empty metadata
    return write_safetensors(header, data, ensure_ascii=draw(st.booleans()),
                             pad=draw(st.sampled_from([0, 0, 1, 7, 64]))), expected


HOSTILE_SHAPES = st.one_of(
    st.lists(st.sampled_from([0, 1, 2, 3, 2**31, 2**32, 2**62, 2**63 - 1, 2**63, 2**64, -1]), max_size=4),
    st.sampled_from([[1] * 64, [1] * 65, [0, 2**70], [2**62, 2**62, 0], [2**40, 0], [1.0], [True], ["1"], [None],
                     [[1]], {}, 5, None, [1e400]]),
)


@st.composite
def hostile_safetensors(draw):
    """A safetensors file with its JSON header tampered with: offsets overlapping, reversed, out of bounds;
    shapes huge, negative, not ints; dtypes unknown; keys doubled; nesting deep; names non-ASCII; metadata
    not strings; lengths that lie; then optionally bytes flipped."""
    header, data, _ = draw(safetensors_parts())
    names = [k for k in header if k != "__metadata__"]
    dup = None
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["offsets", "offsets", "shape", "dtype", "entry", "extra-key", "metadata",
                                   "duplicate", "deep", "add", "drop", "rename"]))
        names = [k for k in names if isinstance(header.get(k), dict)]
        name = draw(st.sampled_from(names)) if names else None
        if op == "offsets" and name:
            current = header[name].get("data_offsets")
            begin, end = current if isinstance(current, list) and len(current) == 2 and all(
                type(o) is int for o in current) else (0, 0)
            other = draw(st.sampled_from([header[n].get("data_offsets") for n in names]))
            other = other if isinstance(other, list) and len(other) == 2 and all(type(o) is int for o in other) \
                else [begin, end]
            header[name]["data_offsets"] = draw(st.sampled_from([
                [end, begin], [begin, end + 1], [begin + 1, end + 1], [begin - 1, end - 1], list(other),
                [other[0], other[0] + end - begin], [begin, len(data) + 8], [2**64 - 1, 2**64 - 1 + end - begin],
                [2**63, 2**63], [2**64, 2**64], [-1, end], [begin], [begin, end, end], [float(begin), end],
                [str(begin), end], None, "0,1", [begin, None], [True, end]]))
        elif op == "shape" and name:
            header[name]["shape"] = draw(HOSTILE_SHAPES)
        elif op == "dtype" and name:
            header[name]["dtype"] = draw(st.sampled_from(["BF16", "F8_E4M3", "F8_E5M2", "f32", "F128", "", None, 5,
                                                          ["F32"], "U8 ", "C128", "F64\x00"]))
        elif op == "entry" and name:
            header[name] = draw(st.sampled_from([5, [], "x", None, {}, {"dtype": "U8"}, [1, 2]]))
        elif op == "extra-key" and name:
            header[name][draw(st.sampled_from(["extra", "dtype ", "__metadata__"]))] = draw(st.sampled_from(
                [1, "x", None, [1] * 3, {"a": {}}]))
        elif op == "metadata":
            header["__metadata__"] = draw(st.sampled_from([None, [], {}, {"a": 1}, {"a": None}, "x", 5,
                                                           {"a": {"b": "c"}}, {"é": "\U0001f600"}, [["a", "b"]]]))
        elif op == "duplicate":
            dup = draw(st.sampled_from(names + ["__metadata__"])) if names else "__metadata__"
        elif op == "deep":
            depth = draw(st.sampled_from([10, 100, 1000, 20000]))
            target = draw(st.sampled_from(names)) if names and draw(st.booleans()) else "__deep__"
            nested = []
            for _ in range(min(depth, 900)):
                nested = [nested]
            if target == "__deep__":
                header[target] = nested
            else:
                header[target]["nest"] = nested
            if depth > 900:
                header["__raw_deep__"] = depth
        elif op == "add":
            begin = draw(st.sampled_from([0, len(data), len(data) // 2]))
            header[draw(TENSOR_NAMES)] = {"dtype": draw(st.sampled_from(sorted(ST_DTYPES))),
                                          "shape": draw(HOSTILE_SHAPES | st.just([0])),
                                          "data_offsets": [begin, begin]}
        elif op == "drop" and name:
            del header[name]
        elif op == "rename" and name:
            header[draw(st.sampled_from(["\ud800", "\udfff", "é", "\x00", " " * 3]))] = header.pop(name)
        names = [k for k in header if k != "__metadata__" and isinstance(k, str)]
    raw_deep = header.pop("__raw_deep__", None)
    text = json.dumps(header, ensure_ascii=draw(st.booleans()), separators=(",", ":"))
    if raw_deep:
        text = text[:-1] + ("," if len(text) > 2 else "") + '"__raw__":' + "[" * raw_deep + "]" * raw_deep + "}"
    if dup is not None:  # the same key twice: the first value, then the whole object again
        value = json.dumps(header.get(dup))
        text = "{" + json.dumps(dup) + ":" + value + ("," if len(text) > 2 else "") + text[1:]
    encoding = draw(st.sampled_from(["utf-8"] * 8 + ["utf-16-le", "utf-32-le"]))
    raw = text.encode(encoding, "surrogatepass")
    raw += b" " * draw(st.sampled_from([0, 0, 3])) + draw(st.sampled_from([b"", b"", b"\x00", b"\n", b"x"]))
    length = len(raw)
    lie = draw(st.sampled_from(["exact"] * 6 + ["short", "long", "interesting"]))
    if lie == "short":
        length -= draw(st.integers(1, 8))
    elif lie == "long":
        length += draw(st.integers(1, 8))
    elif lie == "interesting":
        length = draw(st.sampled_from(INTERESTING_INTS)) % (1 << 64)
    tail = draw(st.sampled_from(["exact"] * 4 + ["short", "long"]))
    if tail == "short":
        data = data[:draw(st.integers(0, max(len(data) - 1, 0)))]
    elif tail == "long":
        data += bytes(draw(st.integers(1, 64)))
    out = max(length, 0).to_bytes(8, "little") + raw + data
    if draw(st.integers(0, 4)) == 0:
        out = draw(mutated(out, hot=8 + len(raw)))
    return out
