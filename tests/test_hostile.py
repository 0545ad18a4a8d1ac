"""Malformed and hostile files: every one a ValueError naming the file, never a crash.

The loads run in a child interpreter, so a crash would show as a failed child, not a dead test run.
"""

import io
import json
import zipfile

import numpy as np

from conftest import run_python


def npy(header: str, body: bytes = b"", version=(1, 0), length=None) -> bytes:
    text = header.encode("latin-1")
    text += b" " * (-(len(text) + 11) % 64) + b"\n"
    size = len(text) if length is None else length
    prefix = b"\x93NUMPY" + bytes(version)
    prefix += size.to_bytes(2 if version[0] == 1 else 4, "little")
    return prefix + text + body


def good(shape="(2,)", descr="'<f8'", order="False"):
    return f"{{'descr': {descr}, 'fortran_order': {order}, 'shape': {shape}, }}"


def safetensors(header, body=b"", length=None) -> bytes:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return (len(raw) if length is None else length).to_bytes(8, "little") + raw + body


def npz(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


CASES = {
    "wrong-magic.npy": b"\x93NUMPX\x01\x00" + b"\0" * 120,
    "bad-version.npy": npy(good(), bytes(16), version=(9, 9)),
    "truncated-prefix.npy": b"\x93NUMPY\x01",
    "header-past-end.npy": npy(good(), bytes(16), length=60000),
    "header-v2-huge.npy": npy(good(), bytes(16), version=(2, 0), length=2 ** 31),
    "not-a-dict.npy": npy("[1, 2, 3]", bytes(16)),
    "expression.npy": npy("__import__('os').system('echo pwned')", bytes(16)),
    "call-in-dict.npy": npy("{'descr': eval('1'), 'fortran_order': False, 'shape': (2,), }", bytes(16)),
    "negative-shape.npy": npy(good("(-1,)"), bytes(16)),
    "oversized-shape.npy": npy(good("(10**12,)"), bytes(16)),
    "huge-shape.npy": npy(good("(1000000000000, 1000000000000)"), bytes(16)),
    "float-shape.npy": npy(good("(2.5,)"), bytes(16)),
    "object-dtype.npy": npy(good(descr="'|O'"), bytes(16)),
    "object-field.npy": npy(good(descr="[('a', '|O')]"), bytes(16)),
    "bad-descr.npy": npy(good(descr="'<q99'"), bytes(16)),
    "descr-not-str.npy": npy(good(descr="42"), bytes(16)),
    "missing-key.npy": npy("{'descr': '<f8', 'shape': (2,), }", bytes(16)),
    "extra-key.npy": npy("{'descr': '<f8', 'fortran_order': False, 'shape': (2,), 'x': 1, }", bytes(16)),
    "order-not-bool.npy": npy(good(order="'yes'"), bytes(16)),
    "deep-nesting.npy": npy("{'descr': " + "[" * 500 + "]" * 500 + ", 'fortran_order': False, 'shape': (), }"),
    "truncated-body.npy": npy(good("(100,)"), bytes(16)),
    "body-one-byte-short.npy": npy(good("(2,)"), bytes(15)),
    "unterminated.npy": npy("{'descr': '<f8', 'fortran_order': False, 'shape': (2,", bytes(16)),
    "bad-utf8-v3.npy": npy("{'descr': '\xff\xfe'}", bytes(16), version=(3, 0)),
    "empty.npy": b"",
    "random.bin": bytes(range(256)) * 4,
    "st-huge-header.safetensors": safetensors({}, length=2 ** 31),
    "st-bad-json.safetensors": safetensors(b"{not json"),
    "st-not-object.safetensors": safetensors(b"[1]"),
    "st-bad-dtype.safetensors": safetensors({"t": {"dtype": "Q7", "shape": [1], "data_offsets": [0, 1]}}, b"\0"),
    "st-bad-shape.safetensors": safetensors({"t": {"dtype": "U8", "shape": [-1], "data_offsets": [0, 1]}}, b"\0"),
    "st-size-mismatch.safetensors": safetensors({"t": {"dtype": "F32", "shape": [4], "data_offsets": [0, 8]}},
                                                bytes(8)),
    "st-past-end.safetensors": safetensors({"t": {"dtype": "U8", "shape": [100], "data_offsets": [0, 100]}},
                                           bytes(10)),
    "st-overlap.safetensors": safetensors({"a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]},
                                           "b": {"dtype": "U8", "shape": [4], "data_offsets": [2, 6]}}, bytes(8)),
    "st-overlap-one-byte.safetensors": safetensors({"a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]},
                                                    "b": {"dtype": "U8", "shape": [4], "data_offsets": [3, 7]}},
                                                   bytes(7)),
    "st-reversed.safetensors": safetensors({"t": {"dtype": "U8", "shape": [0], "data_offsets": [5, 1]}}, bytes(8)),
    "st-entry-not-object.safetensors": safetensors({"t": 5}),
    "zip-truncated.npz": npz({"a.npy": npy(good(), bytes(16))})[:40],
    "npz-bad-member.npz": npz({"a.npy": npy(good("(-3,)"), bytes(16))}),
    "npz-member-broken-npy.npz": npz({"a.npy": b"\x93NUMPY\x01\x00hello world"}),
    "npz-member-short.npz": npz({"a.npy": npy(good("(1000,)"), bytes(16))}),
    "paren-int-shape.npy": npy(good("(3)"), bytes(24)),
    "leading-zero-shape.npy": npy(good("(003,)"), bytes(24)),
    "long-int-shape.npy": npy(good("(" + "9" * 5000 + ",)")),
    "huge-zero-shape.npy": npy(good("(0, 10000000000000000000000)")),
    "overflow-shape.npy": npy(good("(0, 4611686018427387904, 4611686018427387904)")),
    "too-many-dims.npy": npy(good("(" + "1, " * 65 + ")")),
    "header-too-long.npy": npy(good() + " " * (5 << 20), bytes(16), version=(2, 0)),
    "st-dtype-list.safetensors": safetensors({"t": {"dtype": [], "shape": [1], "data_offsets": [0, 1]}}, b"\0"),
    "st-gap.safetensors": safetensors({"t": {"dtype": "U8", "shape": [1], "data_offsets": [3, 4]}}, bytes(4)),
    "st-trailing.safetensors": safetensors({"t": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}}, bytes(9)),
    "st-bad-metadata.safetensors": safetensors({"__metadata__": {"a": 1}}),
    "st-metadata-list.safetensors": safetensors({"__metadata__": []}),
    "st-duplicate.safetensors": safetensors(b'{"t": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}, '
                                            b'"t": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}}', b"\0"),
}


def test_every_hostile_file_is_a_value_error_naming_it(tmp_path):
    for name, data in CASES.items():
        (tmp_path / name).write_bytes(data)
    proc = run_python(f"""
        import os, mmio
        root = {str(tmp_path)!r}
        for name in sorted(os.listdir(root)):
            path = os.path.join(root, name)
            try:
                result = mmio.load(path)
                if hasattr(result, "files"):
                    [result[k] for k in result.files]
                print(name, "LOADED")
            except ValueError as e:
                print(name, "ValueError", name in str(e))
            except Exception as e:
                print(name, type(e).__name__, e)
        print("done")
    """, timeout=120)
    lines = proc.stdout.splitlines()
    assert lines[-1] == "done"
    results = dict(line.split(" ", 1) for line in lines[:-1])
    assert set(results) == set(CASES)
    wrong = {name: r for name, r in results.items() if r != "ValueError True"}
    assert not wrong, wrong


def test_long_headers_parse_in_linear_time(tmp_path):
    """A 250 kB header (numpy refuses over 10 kB) parses, and fast: no quadratic step."""
    import time
    import mmio
    fields = ", ".join(f"('f{i}', '<i4')" for i in range(16_000))
    path = tmp_path / "wide.npy"
    path.write_bytes(npy(good("(1,)", descr=f"[{fields}]"), bytes(4 * 16_000), version=(2, 0)))
    start = time.perf_counter()
    a = mmio.load(path)
    elapsed = time.perf_counter() - start
    assert len(a.dtype.names) == 16_000
    assert elapsed < 30  # a quadratic parser would take minutes; this is a coarse ceiling


HOSTILE_HEADERS = {  # ~3 MiB each: before the limits, seconds and hundreds of MB to refuse
    "deep": good(descr="[" * 200_000 + "]" * 200_000),
    "long-descr": good(descr="'" + "x" * (3 << 20) + "'"),
    "long-field-type": good(descr="[('a', '" + "x" * (3 << 20) + "')]"),
    "many-fields": good("(1,)", descr="[" + ", ".join(f"('f{i}', '<i4')" for i in range(150_000)) + "]"),
    "many-dims": good("(" + "1, " * (1 << 20) + ")"),
    "long-int": good("(" + "9" * (3 << 20) + ",)"),
    "long-key": "{'descr': '<i4', 'fortran_order': False, 'shape': (1,), '" + "k" * (3 << 20) + "': 1}",
}


def test_hostile_headers_are_refused_cheaply_with_short_messages(tmp_path):
    for name, header in HOSTILE_HEADERS.items():
        (tmp_path / f"{name}.npy").write_bytes(npy(header, bytes(64), version=(2, 0)))
    proc = run_python(f"""
        import resource, mmio
        for name in {sorted(HOSTILE_HEADERS)!r}:
            path = {str(tmp_path)!r} + "/" + name + ".npy"
            before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            try:
                mmio.load(path)
            except ValueError as e:
                grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
                print(name, str(e).startswith(path), len(str(e)) < 600, grown < 64 << 10)
    """)
    assert proc.stdout.splitlines() == [f"{name} True True True" for name in sorted(HOSTILE_HEADERS)]


def test_dtype_of_a_structured_header_matches_numpy(tmp_path):
    import mmio
    dtype = np.dtype({"names": ["a", "b"], "formats": ["<i4", "<f8"], "offsets": [0, 8], "itemsize": 24})
    path = tmp_path / "padded.npy"
    np.save(path, np.zeros(3, dtype))
    assert mmio.load(path).dtype == np.load(path).dtype


def test_load_of_a_fifo_is_refused_not_waited_on(tmp_path):
    import errno
    import mmio
    import os
    import pytest
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(OSError, match="cannot load this file: it is not a regular file") as info:
        mmio.load(fifo)
    assert info.value.errno == errno.ENODEV and info.value.filename == str(fifo)


def test_structured_dtypes_are_not_shared_between_loads(tmp_path):
    import mmio
    path = tmp_path / "s.npy"
    np.save(path, np.zeros(3, [("x", "i4"), ("y", "f8")]))
    first = mmio.load(path)
    first.dtype.names = ("p", "q")
    assert mmio.load(path).dtype.names == ("x", "y")
    assert mmio.load(path, copy=True).dtype.names == ("x", "y")


def test_advice_remove_is_refused_by_load(tmp_path):
    import mmio
    import pytest
    path = tmp_path / "a.npy"
    np.save(path, np.arange(1.0, 1001.0))
    before = path.read_bytes()
    with pytest.raises(ValueError, match="throw data away"):
        mmio.load(path, mode="r+", advice="remove")
    assert path.read_bytes() == before


def test_out_that_maps_the_same_file_shifted(tmp_path):
    import mmio
    for n in (1000, 1 << 18):
        path = tmp_path / f"a{n}.npy"
        data = np.arange(n, dtype="f8")
        np.save(path, data)
        out = mmio.open_array(path, "f8", shape=n - 1, offset=136, mode="r+")
        target = np.empty(n)
        mmio.load(path, out=target)
        np.testing.assert_array_equal(target, data)
        alias = mmio.open_array(path, "f8", shape=n, offset=120, mode="r+")  # overlaps header and data
        mmio.load(path, out=alias)
        np.testing.assert_array_equal(alias, data)
        del out, alias


def test_arguments_are_checked_whatever_the_file_size(tmp_path):
    import mmio
    import pytest
    path = tmp_path / "small.npy"
    np.save(path, np.arange(3.0))
    for kwargs, message in (({"threads": 0}, "threads must be between 1 and 64, got 0$"),
                            ({"threads": 1000}, "threads must be between 1 and 64, got 1000$"),
                            ({"advice": "bogus"}, "^'bogus' is not a Advice; choose one of: normal, ")):
        with pytest.raises(ValueError, match=message):
            mmio.load(path, copy=True, **kwargs)


def test_open_array_and_create_check_before_touching_the_file(tmp_path):
    import mmio
    import pytest
    path = tmp_path / "keep.bin"
    path.write_bytes(bytes(80))
    for call, error, message in (
            (lambda: mmio.open_array(path, "f8", shape=2, mode="w+", order="X"), ValueError, "order must be 'C' or 'F'"),
            (lambda: mmio.open_array(path, object, shape=2, mode="w+"), ValueError, "holds Python objects"),
            (lambda: mmio.create(path, -3, "f8"), ValueError, r"shape \(-3,\) has a negative dimension"),
            (lambda: mmio.create(path, (1,) * 65, "f8"), ValueError, "shape has 65 dimensions; numpy allows 64"),
            (lambda: mmio.create(path, (2.5,), "f8"), TypeError, r"shape must be an int or a sequence of ints")):
        with pytest.raises(error, match=message):
            call()
        assert path.stat().st_size == 80
    a = mmio.open_array(path, "f8", shape=(np.int64(2), 5), mode="w+")
    assert a.shape == (2, 5)
    assert mmio.open_array(path, "f8", shape=np.int64(10)).shape == (10,)


def test_absurd_zero_element_safetensors_shapes_are_refused_naming_the_file(tmp_path):
    import mmio
    import pytest
    for shape in ([0, 2 ** 70], [0, 2 ** 63], [0, 2 ** 63 - 1, 2 ** 63 - 1], [2 ** 31, 0, 2 ** 40]):
        path = tmp_path / "z.safetensors"
        path.write_bytes(safetensors({"t": {"dtype": "F32", "shape": shape, "data_offsets": [0, 0]}}))
        for kwargs in ({}, {"copy": True}):
            with pytest.raises(ValueError, match=f"^{path}: tensor 't': shape .* (too large to address|larger than)"):
                mmio.load(path, **kwargs)


def test_crafted_references_are_refused_not_mapped_out_of_bounds():
    # A pickled reference is data a receiver trusts no further than the file: an object dtype (file bytes
    # read as pointers), a view reaching before the file or past its end, or a shape past any size is refused.
    proc = run_python("""
        import os, tempfile, numpy as np, mmio
        from mmio import sharing
        path = os.path.join(tempfile.mkdtemp(), "a.npy")
        np.save(path, np.arange(1000.0))
        ref = sharing.reference(mmio.load(path))
        refused = 0
        for bad in (ref._replace(dtype=np.dtype(object)), ref._replace(dtype=np.dtype([("p", "O"), ("x", "f8")])),
                    ref._replace(shape=(10 ** 12, 10 ** 12), strides=(8, 8)), ref._replace(offset=-8),
                    ref._replace(strides=(-10 ** 9,)), ref._replace(shape=(2000,)), ref._replace(shape=(-1,)),
                    ref._replace(strides=("8",)), ref._replace(format=99)):
            try:
                sharing.rebuild(bad)
            except ValueError:
                refused += 1
        print(refused, np.array_equal(sharing.rebuild(ref), np.arange(1000.0)))
    """)
    assert proc.stdout.split() == ["9", "True"]
