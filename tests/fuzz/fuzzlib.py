"""The fuzzers' shared machinery: the contract check and the reference loaders.

The contract, for any bytes in a file::

    mmio.load(path) (and copy=True, and every member of a container) either succeeds or raises ValueError
    naming the file; in bounded CPU time and memory; and where numpy (.npy/.npz) or the reference
    safetensors reader also loads the file, both give the same dtype, shape and bytes.

Acceptance disagreements (one loads, the other refuses) are recorded, not asserted: see ``DISAGREEMENTS``
and the summary ``conftest.py`` prints at the end of the run.
"""

from __future__ import annotations

import atexit
import itertools
import json
import os
import re
import resource
import shutil
import tempfile
import time
import tracemalloc
import warnings
from dataclasses import dataclass, field

import numpy as np

import mmio
from mmio import formats
from mmio.arrays import NpzArrays, SafetensorsArrays

CPU_LIMIT = float(os.environ.get("MMIO_FUZZ_CPU_LIMIT", "1.0"))
"""CPU seconds one load (with every member read) may take."""
WALL_LIMIT = 10 * CPU_LIMIT
"""Wall seconds one load may take (loose: the machine is shared; CPU time is the real bound)."""
TRACED_LIMIT = 64 << 20
"""Bytes of Python and numpy allocations one load may peak at (every fuzzed file is far smaller)."""
RSS_LIMIT = 256 << 20
"""Growth of the process's peak resident set one case may cause."""


_root = tempfile.mkdtemp(prefix="mmio-fuzz-")
atexit.register(shutil.rmtree, _root, True)
_counter = itertools.count()

FILE_STEMS = ("case", "ünïcødé", "with space", "x")
"""Basenames the cases are written under: the error message must name whichever it is."""


# ---- recording disagreements -------------------------------------------------------------------

@dataclass
class Disagreement:
    count: int
    example: bytes
    detail: str


DISAGREEMENTS: dict[str, Disagreement] = {}


def _category(message: str, path) -> str:
    """A message with the file's name, numbers and quoted text folded, to group similar ones."""
    text = str(message).replace(str(path), "<file>").replace(os.path.basename(str(path)), "<file>")
    text = re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", text)
    text = re.sub(r"^<file>\[[^\]]*\]", "<file>[member]", text)
    text = re.sub(r"\d+", "N", text)
    return text[:90]


def record(fmt: str, what: str, message: str, path, data: bytes) -> None:
    key = f"{fmt}: {what}: {_category(message, path)}"
    entry = DISAGREEMENTS.get(key)
    if entry is None:
        DISAGREEMENTS[key] = Disagreement(1, data, str(message)[:300])
    else:
        entry.count += 1
        if len(data) < len(entry.example):
            entry.example, entry.detail = data, str(message)[:300]


def write_disagreements(directory) -> list[str]:
    """Save one (the smallest) example file per disagreement category; return the lines of an index."""
    os.makedirs(directory, exist_ok=True)
    lines = []
    for i, (key, entry) in enumerate(sorted(DISAGREEMENTS.items())):
        name = f"{i:03d}.{key.split(':', 1)[0]}"
        with open(os.path.join(directory, name), "wb") as f:
            f.write(entry.example)
        lines.append(f"{name}\t{entry.count}\t{key}\t{entry.detail}")
    with open(os.path.join(directory, "index.tsv"), "w") as f:
        f.write("\n".join(lines) + "\n")
    return lines


# ---- outcomes --------------------------------------------------------------------------------

@dataclass
class Outcome:
    """What a loader made of a file: refused whole (``error``), or arrays and refused members by name."""

    error: str | None = None
    arrays: dict = field(default_factory=dict)
    refused: dict = field(default_factory=dict)
    metadata: dict | None = None


class ContractError(AssertionError):
    """mmio broke the contract (not a disagreement with a reference: a bug)."""


def names_file(message: str, path) -> bool:
    message = str(message)
    return str(path) in message or os.path.basename(str(path)) in message


def _refusal(exc: BaseException, path, where: str) -> str:
    if type(exc) is not ValueError and not isinstance(exc, ValueError):
        raise ContractError(f"{where} raised {type(exc).__name__}, not ValueError: {exc}") from exc
    if not names_file(exc, path):
        raise ContractError(f"{where} raised ValueError without naming {path}: {exc}") from exc
    return str(exc)


def mmio_outcome(path, copy: bool, close: bool = False) -> Outcome:
    """``mmio.load(path, copy=copy)`` and every array in it, each refusal checked against the contract.

    ``close``: close an .npz's NpzArrays once its arrays are out (they must stay readable).
    """
    try:
        result = mmio.load(path, copy=copy)
    except Exception as exc:
        return Outcome(error=_refusal(exc, path, f"mmio.load(copy={copy})"))
    if isinstance(result, np.ndarray):
        return Outcome(arrays={None: result})
    if isinstance(result, NpzArrays):
        out = Outcome()
        for name in list(result):
            if not isinstance(name, str):
                raise ContractError(f"member name {name!r} is not a str")
            try:
                value = result[name]
                again = result[name + ".npy"]  # numpy's spelling reaches the same member
                if isinstance(value, bytes):  # a member that is not an .npy file: its bytes, as numpy gives them
                    if again != value:
                        raise ContractError(f"{name!r} and {name + '.npy'!r} give different bytes")
                    value = np.frombuffer(value, np.uint8)
                elif again is not value:
                    raise ContractError(f"{name!r} and {name + '.npy'!r} give different arrays")
                out.arrays[name] = value
            except KeyError as exc:
                raise ContractError(f"member {name!r} is listed but not found: {exc}") from exc
            except Exception as exc:
                out.refused[name] = _refusal(exc, path, f"member {name!r} (copy={copy})")
        if len(out.arrays) + len(out.refused) != len(result):
            raise ContractError("the members listed and the members found differ")
        if close:
            result.close()
        return out
    if isinstance(result, SafetensorsArrays):
        if not isinstance(result.metadata, dict):
            raise ContractError(f"metadata is a {type(result.metadata).__name__}")
        return Outcome(arrays=dict(result), metadata=result.metadata)
    raise ContractError(f"mmio.load returned a {type(result).__name__}")


def numpy_outcome(path) -> Outcome:
    """What ``numpy.load`` makes of the file (any exception is a refusal)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            result = np.load(path, allow_pickle=False)
        except Exception as exc:
            return Outcome(error=f"{type(exc).__name__}: {exc}")
        if isinstance(result, np.ndarray):
            return Outcome(arrays={None: result})
        with result:
            out = Outcome()
            for name in result.files:
                try:
                    value = result[name]
                except Exception as exc:
                    out.refused[name] = f"{type(exc).__name__}: {exc}"
                else:
                    if isinstance(value, bytes):  # a member that is not an .npy file
                        value = np.frombuffer(value, np.uint8)
                    out.arrays[name] = value
            return out


def safetensors_outcome(path) -> Outcome:
    """What the reference reader, ``safetensors.numpy.load_file``, makes of the file."""
    from safetensors.numpy import load_file
    try:
        tensors = load_file(path)
    except Exception as exc:
        return Outcome(error=f"{type(exc).__name__}: {exc}")
    return Outcome(arrays=dict(tensors))


REFERENCES = {"npy": numpy_outcome, "npz": numpy_outcome, "safetensors": safetensors_outcome}


# ---- the check ------------------------------------------------------------------------------

def reader(data: bytes):
    return lambda offset, n: data[offset:offset + n] if offset >= 0 and n > 0 else b""


def describe_in_bounds(data: bytes, path) -> None:
    """What ``load`` will map lies inside the file: touching a view cannot fault (SIGBUS) in this process."""
    try:
        layout = formats.describe(reader(data), len(data), str(path))
    except Exception as exc:
        _refusal(exc, path, "formats.describe")
        return
    for spec in layout.arrays:
        if spec.raw_member is not None:
            continue  # not an .npy member: handed out as bytes, nothing mapped
        if spec.refusal is None:
            if not 0 <= spec.offset <= spec.offset + spec.nbytes <= len(data):
                raise ContractError(f"array {spec.name!r} at {spec.offset}+{spec.nbytes} lies outside the "
                                    f"file of {len(data)} bytes")
        elif not names_file(spec.refusal, path):
            raise ContractError(f"member refusal without the file's name: {spec.refusal}")


def same_array(a: np.ndarray, b: np.ndarray) -> str | None:
    """Why two arrays differ in dtype, shape, order or bytes (None if they do not).

    Bytes are compared as they lie in memory; where they differ only in the padding between or after the
    fields of a structured dtype (which numpy's own copies do not carry), they are the same data.
    """
    if a.dtype != b.dtype or a.dtype.descr != b.dtype.descr:
        return f"dtype {a.dtype!r} != {b.dtype!r}"
    if a.shape != b.shape:
        return f"shape {a.shape} != {b.shape}"
    if a.size > 1 and a.ndim > 1 and (a.flags.f_contiguous, a.flags.c_contiguous) != (
            b.flags.f_contiguous, b.flags.c_contiguous):
        return f"memory order differs (F={a.flags.f_contiguous}/{b.flags.f_contiguous})"
    if a.tobytes(order="A") == b.tobytes(order="A"):
        return None
    if _has_fields(a.dtype) and _packed(a) == _packed(b):
        return None
    return "bytes differ"


def _has_fields(dtype: np.dtype) -> bool:
    return dtype.names is not None or (dtype.subdtype is not None and _has_fields(dtype.subdtype[0]))


def _packed(a: np.ndarray) -> bytes:
    """The bytes of every field, without the padding."""
    from numpy.lib import recfunctions
    return recfunctions.repack_fields(a.copy(), recurse=True).tobytes()


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def rss() -> tuple[int, int]:
    """``(resident, peak resident)`` bytes of this process, from /proc/self/status."""
    found = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                found[line[:5]] = int(line.split()[1]) * 1024
    return found["VmRSS"], found["VmHWM"]


def reset_peak_rss() -> None:
    """Start the peak-resident counter (VmHWM) afresh, so the next peak is the next case's own."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass  # then the peak is the process's so far: a weaker bound, still a bound


def _measured(what: str, fn):
    """``fn()``, with the contract's bounds on its CPU time, wall time and memory asserted."""
    reset_peak_rss()
    rss0, _ = rss()
    cpu0 = _cpu()
    wall0 = time.perf_counter()
    tracemalloc.start()
    try:
        result = fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    wall = time.perf_counter() - wall0
    cpu = _cpu() - cpu0
    grown = rss()[1] - rss0
    if cpu > CPU_LIMIT or wall > WALL_LIMIT:
        raise ContractError(f"{what} took {cpu:.2f} s of CPU ({wall:.2f} s wall)")
    if peak > TRACED_LIMIT or grown > RSS_LIMIT:
        raise ContractError(f"{what} allocated {peak >> 20} MiB (peak RSS grew {grown >> 20} MiB)")
    return result


def _touched(outcome: Outcome) -> Outcome:
    for array in outcome.arrays.values():
        array.tobytes()  # every byte of every view is read: a mapping past the end of the file would fault
    return outcome


def case_path(suffix: str, stem: str = "case"):
    return os.path.join(_root, f"{stem}-{next(_counter)}{suffix}")


def check(data: bytes, fmt: str, *, stem: str = "case", suffix: str | None = None,
          expected: dict | None = None, in_process: bool = True) -> Outcome:
    """Write ``data`` to a file and hold ``mmio.load`` of it to the contract; compare with the reference.

    ``fmt`` (npy, npz, safetensors or None) picks the reference reader and the file's suffix. ``expected``
    (name -> ndarray) marks a valid file: mmio must load it and give exactly these arrays. Returns mmio's
    outcome (zero-copy). ``in_process=False`` skips the bounds pre-check (for a child process).
    """
    path = case_path(suffix if suffix is not None else f".{fmt or 'bin'}", stem)
    with open(path, "wb") as f:
        f.write(data)
    try:
        return _check(path, data, fmt, expected, in_process)
    except ContractError as exc:
        dump = os.environ.get("MMIO_FUZZ_DUMP")
        if dump:  # keep every failing input, for reproducers
            import hashlib
            os.makedirs(dump, exist_ok=True)
            name = hashlib.sha1(data).hexdigest()[:12]
            with open(os.path.join(dump, f"{name}.{fmt}"), "wb") as f:
                f.write(data)
            with open(os.path.join(dump, f"{name}.txt"), "w") as f:
                f.write(f"{exc}\n")
        raise
    finally:
        os.unlink(path)


def _check(path, data, fmt, expected, in_process) -> Outcome:
    if in_process:
        describe_in_bounds(data, path)
    views = _measured("mmio.load", lambda: _touched(mmio_outcome(path, copy=False, close=not in_process)))
    copies = _measured("mmio.load(copy=True)", lambda: _touched(mmio_outcome(path, copy=True)))
    _same_outcome(views, copies, "zero-copy load", "copy=True load")
    if expected is not None:
        _expected(views, expected, path)
    reference = REFERENCES.get(fmt)
    if reference is not None:
        compare(fmt, views, reference(path), path, data)
    if not in_process:
        _touched(views)  # the views outlive their container, closed and released
    return views


def _same_outcome(a: Outcome, b: Outcome, what_a: str, what_b: str) -> None:
    if (a.error is None) != (b.error is None):
        raise ContractError(f"{what_a}: {a.error or 'loads'}; {what_b}: {b.error or 'loads'}")
    if set(a.arrays) != set(b.arrays) or set(a.refused) != set(b.refused):
        raise ContractError(f"{what_a} gives {sorted(map(str, a.arrays))} refusing {sorted(a.refused)}; "
                            f"{what_b} gives {sorted(map(str, b.arrays))} refusing {sorted(b.refused)}")
    for name, array in a.arrays.items():
        why = same_array(array, b.arrays[name])
        if why:
            raise ContractError(f"{name!r}: {what_a} and {what_b} differ: {why}")


def _expected(views: Outcome, expected: dict, path) -> None:
    if views.error is not None:
        raise ContractError(f"a valid file is refused: {views.error}")
    for name, array in expected.items():
        if name not in views.arrays:
            raise ContractError(f"{name!r} of a valid file is not loaded: {views.refused.get(name, 'missing')}")
        why = same_array(views.arrays[name], array)
        if why:
            raise ContractError(f"{name!r} of a valid file differs from what was saved: {why}")


def compare(fmt: str, ours: Outcome, ref: Outcome, path, data: bytes) -> None:
    """Equal where both load; record where one loads and the other refuses."""
    if ours.error is not None or ref.error is not None:
        if ours.error is None:
            record(fmt, "mmio loads, reference refuses", ref.error, path, data)
        elif ref.error is None:
            record(fmt, "mmio refuses, reference loads", ours.error, path, data)
        return
    for name in set(ours.arrays) | set(ours.refused) | set(ref.arrays) | set(ref.refused):
        both = name in ours.arrays and name in ref.arrays
        why = same_array(ours.arrays[name], ref.arrays[name]) if both else None
        if fmt == "npz" and (why or (name in ours.arrays) != (name in ref.arrays)) and _names_collide(name, path):
            record(fmt, "member names collide (x and x.npy)", "each reads another member", path, data)
        elif why:
            raise ContractError(f"{name!r}: mmio and the reference both load it but differ: {why}")
        elif name in ours.arrays and not both:
            record(fmt, "member: mmio loads, reference refuses", ref.refused.get(name, "no such member"),
                   path, data)
        elif name in ref.arrays and not both:
            record(fmt, "member: mmio refuses, reference loads", ours.refused.get(name, "no such member"),
                   path, data)


def _names_collide(name, path) -> bool:
    """Whether the archive has both ``name`` and ``name.npy``: numpy reads the one named exactly, mmio the
    later one in the directory. An ambiguous archive, not a bug of either."""
    import zipfile
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
    except Exception:
        return False
    return name is not None and name in names and name + ".npy" in names


def check_hostile(data: bytes, fmt: str | None, *, stem: str = "case", in_process: bool = True) -> Outcome:
    """:func:`check` for a file that may be anything."""
    return check(data, fmt, stem=stem, in_process=in_process)
