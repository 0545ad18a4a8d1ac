"""Stress: threads racing a mapping's lifetime and control methods against its reads and copies, another
process truncating files under every public operation, and open/load/fail loops that must not leak.

Every scenario runs in a child interpreter (``run_python``), so a crash fails one test, not the run. Each
child prints ``SUMMARY {json}`` with its operation counts; the tests print them too (``pytest -s`` or
``-rP`` shows the volumes). Runs are bounded by time, but pass/fail never depends on timing: a child keeps
going past its time until every operation was attempted (and the race did what it is about), then checks
the contract: every operation works or raises a clear exception, and no byte read is wrong.
"""

import json

import pytest

from conftest import run_python

RACE_SECONDS = 0.6       # per race; the child goes on past it until every operation was attempted
TRUNCATE_SECONDS = 1.2   # how long the truncating process runs
LEAK_ITERATIONS = 60     # measured rounds of the leak loop, after 10 rounds of warm-up


def summary(proc):
    """The child's ``SUMMARY`` line, printed for the record and returned as a dict."""
    lines = [line for line in proc.stdout.splitlines() if line.startswith("SUMMARY ")]
    assert len(lines) == 1, f"no summary from the child:\n{proc.stdout}\n{proc.stderr}"
    print(lines[0])
    return json.loads(lines[0].removeprefix("SUMMARY "))


# ---- 1. threads racing close / resize / protect / lock / advise against reads and copies ---------------

RACE = """
import collections, gc, json, os, random, sys, tempfile, threading, time, traceback
import numpy as np
import mmio

P = mmio.PAGE_SIZE
sys.setswitchinterval(2e-5)   # hand the GIL over often: more interleavings per second
path = os.path.join(tempfile.mkdtemp(), "race.npy")
BODY_LEN = 5 << 18            # 1.25 MiB: load(copy=True) maps the file and copies it in parallel
np.save(path, (np.arange(BODY_LEN) % 251 + 1).astype(np.uint8))
DATA = open(path, "rb").read()
N = len(DATA)
BODY = DATA[N - BODY_LEN:]
box = [mmio.open(path, "r+")]  # the mapping under attack (the close race swaps in fresh ones)
stop = threading.Event()
failures = []
examples = {}                  # the first message of each kind of refusal
CLEAR = (ValueError, BufferError, PermissionError, TypeError, IndexError, mmio.MappingFaultError)


def same(got, at):
    got = bytes(got)
    if got != DATA[at:at + len(got)]:
        raise AssertionError(f"wrong bytes: {len(got)} bytes at offset {at}")


# Reads and copies; a mapping that shrank returns a prefix of what was asked.
def index(m, a, b): assert m[a] == DATA[a]
def slice_(m, a, b): same(m[a:b], a)
def strided(m, a, b):
    got = m[a:b:7]
    assert got == DATA[a:b:7][:len(got)], "wrong bytes (strided)"
def whole(m, a, b): same(bytes(m[0:N]), 0)           # 1.25 MiB: the GIL-free copy
def readinto(m, a, b):
    buf = bytearray(b - a)
    same(buf[:m.readinto(buf, a, threads=2)], a)
def memview(m, a, b):
    with memoryview(m) as v:
        same(v[a:b], a)
def write(m, a, b): m[a:b] = DATA[a:b]                 # the bytes already there: readers still see DATA
def write_whole(m, a, b): m[0:N] = DATA                # GIL-free write
def populate(m, a, b): m.populate(threads=2)
def array(m, a, b):
    x = m.array()
    same(x[a:b], a)
def residency(m, a, b): m.residency(a, b - a); mmio.residency(m)
def buffer_calls(m, a, b):
    mmio.advise(m, "willneed", a, b - a)     # the Mapping itself (m.advise), racing resize()
    with memoryview(m) as v:                 # and a buffer, which holds the mapping
        mmio.advise(v, "willneed", a, b - a)
        mmio.residency(v[a:b])
def load_copy(m, a, b):
    got = mmio.load(path, copy=True, threads=2)
    assert got.tobytes() == BODY, "wrong bytes from load(copy=True)"

READS = [index, slice_, strided, whole, readinto, memview, write, write_whole, populate, array, residency,
         buffer_calls, load_copy]


def reader(seed, tried, errors):
    rng = random.Random(seed)
    i = 0
    while not stop.is_set():
        op = READS[i % len(READS)]
        i += 1
        a = rng.randrange(N)
        b = rng.randrange(a, min(N, a + rng.choice([64, 4 * P, N])) + 1)
        try:
            tried[op.__name__.rstrip("_")] += 1
            op(box[0], a, b)
        except CLEAR as e:
            errors[f"{op.__name__.rstrip('_')}: {type(e).__name__}"] += 1


def controller(seed, tried, errors):
    rng = random.Random(seed)
    while not stop.is_set():
        what, action = pick(rng)
        try:
            action()
            tried[what] += 1
        except CLEAR + ALSO as e:
            tried[what + " refused"] += 1
            errors[f"{what}: {type(e).__name__}"] += 1
            examples.setdefault(f"{what}: {type(e).__name__}", str(e))


def guarded(target, *args):
    try:
        target(*args)
    except BaseException:
        failures.append(traceback.format_exc())
        stop.set()


def race(controllers=1, readers=3, need=(), seconds=1.0):
    # need: (what, tries, successes): what the controllers must have tried, and done, before the race ends
    reads = [collections.Counter() for _ in range(readers)]
    controls = [collections.Counter() for _ in range(controllers)]
    errors = [collections.Counter() for _ in range(readers + controllers)]
    done = collections.Counter()
    threads = [threading.Thread(target=guarded, args=(reader, i, reads[i], errors[i])) for i in range(readers)]
    threads += [threading.Thread(target=guarded, args=(controller, 100 + i, controls[i], errors[readers + i]),
                                 name=f"controller {i}") for i in range(controllers)]
    for t in threads:
        t.start()
    start = time.monotonic()
    while not stop.is_set():
        time.sleep(0.05)
        tried = sum(reads, collections.Counter())
        done = sum(controls, collections.Counter())
        if (time.monotonic() - start >= seconds and all(tried[op.__name__.rstrip("_")] for op in READS)
                and all(done[what] + done[what + " refused"] >= tries and done[what] >= successes
                        for what, tries, successes in need)):
            break
        if time.monotonic() - start > 60:
            failures.append(f"the race did not get through its operations: {dict(tried)} {dict(done)}")
            break
    stop.set()
    for t in threads:
        t.join()
    if failures:
        print("FAILED", *failures, sep="\\n")
        sys.exit(1)
    gc.collect()
    m = box[0]
    if not m.closed:
        m.protect("rw")
        m.close()                       # every export was given back: this must not raise BufferError
    assert open(path, "rb").read() == DATA, "the file changed"
    tried = sum(reads, collections.Counter())
    refused = sum(errors, collections.Counter())
    print("SUMMARY " + json.dumps({"reads": sum(tried.values()), "per_read": dict(tried), "control": dict(done),
                                   "refused": dict(refused), "examples": examples,
                                   "seconds": round(time.monotonic() - start, 2)}))
"""

# One controller per race: pick(rng) -> (what, action); ALSO: exceptions it may meet beyond CLEAR; need:
# (what, tries, successes) it must reach before the race may end.
CONTROLS = {
    "close": ("""
        ALSO = ()
        def close_and_reopen():
            box[0].close()                       # BufferError while a reader holds an export
            time.sleep(random.random() * 2e-4)   # readers meet the closed mapping meanwhile
            box[0] = mmio.open(path, "r+")
        def pick(rng):
            return "close", close_and_reopen
        """, [("close", 10, 3)]),
    "resize": ("""
        ALSO = ()
        SIZES = [N, N // 2, N - 1, 3 * P + 5, P, 0]
        def pick(rng):
            size = rng.choice(SIZES)
            return "resize", lambda: box[0].resize(size)
        """, [("resize", 100, 20)]),
    "protect": ("""
        ALSO = ()
        def pick(rng):
            m, prot = box[0], rng.choice(["none", "r", "rw"])
            if rng.random() < 0.3:
                return "protect " + prot, lambda: (m.protect(prot), m.protect("rw"))
            a, n = rng.randrange(N), rng.randrange(1, 8 * P)
            return "protect " + prot, lambda: m.protect(prot, a, n)
        """, [("protect none", 100, 5), ("protect r", 100, 5), ("protect rw", 100, 20)]),
    "lock": ("""
        ALSO = (OSError,)                        # RLIMIT_MEMLOCK, for an unprivileged user
        def lock_range(m, a, n):
            m.lock(a, n)
            m.unlock(a, n)
        def lock_buffer(m, a):
            mmio.lock(m, a)
            mmio.unlock(m, a)
        def pick(rng):
            m, a = box[0], rng.randrange(N)
            return rng.choice([("lock", lambda: lock_range(m, a, rng.randrange(N - a + 1))),
                               ("lock on_fault", lambda: m.lock(on_fault=True)),
                               ("mmio.lock", lambda: lock_buffer(m, a)),
                               ("unlock", m.unlock)])
        """, [("lock", 100, 20), ("lock on_fault", 100, 20), ("mmio.lock", 100, 20), ("unlock", 100, 20)]),
    "advise": ("""
        ALSO = (OSError,)                        # advice the kernel refuses on this memory
        ADVICE = ["normal", "random", "sequential", "willneed", "dontneed", "cold", "pageout", "hugepage",
                  "nohugepage", "dontdump", "dodump"]
        def pick(rng):
            m, a = box[0], rng.randrange(N)
            if rng.random() < 0.2:
                return "prefetch", lambda: m.prefetch(a, None, chunk=4 * P)
            advice, n = rng.choice(ADVICE), rng.randrange(N - a + 1)
            return "advise", lambda: m.advise(advice, a, n)
        """, [("advise", 100, 50), ("prefetch", 20, 5)]),
    "everything": ("""
        ALSO = (OSError,)                        # locks and advice, as above
        def close_and_reopen():
            box[0].close()
            box[0] = mmio.open(path, "r+")
        def protect_and_back(m, prot, a):
            m.protect(prot, a, 4 * P)
            m.protect("rw")
        def lock_and_back(m):
            m.lock(0, 16 * P)
            m.unlock()
        def pick(rng):
            m = box[0]
            if threading.current_thread().name != "controller 0":
                time.sleep(random.random() * 2e-4)   # leave the first controller moments without exports
            actions = [("close", close_and_reopen), ("lock", lambda: lock_and_back(m)),
                       ("sync", lambda: m.sync(wait=rng.random() < 0.5)),
                       ("populate", lambda: m.populate(0, 64 * P, threads=2))]
            size, prot, a = rng.choice([N, N // 2, P, 0]), rng.choice(["none", "r"]), rng.randrange(N)
            actions += [("resize", lambda: m.resize(size)),
                        ("protect", lambda: protect_and_back(m, prot, a)),
                        ("advise", lambda: m.advise(rng.choice(["willneed", "dontneed", "random"])))]
            return rng.choice(actions)
        """, [("close", 10, 1), ("resize", 10, 1), ("protect", 10, 1), ("lock", 10, 1), ("populate", 10, 1)]),
}


@pytest.mark.parametrize("control", list(CONTROLS))
def test_threads_racing_the_mapping_get_bytes_or_clear_errors(control):
    code, need = CONTROLS[control]
    controllers = 2 if control == "everything" else 1
    proc = run_python(setup=RACE, code=code + f"""
        race(controllers={controllers}, need={need!r}, seconds={RACE_SECONDS})
    """)
    result = summary(proc)
    reads = {"index", "slice", "strided", "whole", "readinto", "memview", "write", "write_whole", "populate",
             "array", "residency", "buffer_calls", "load_copy"}
    assert set(result["per_read"]) == reads
    for what, tries, successes in need:
        assert result["control"][what] >= successes
        assert result["control"][what] + result["control"].get(what + " refused", 0) >= tries
    for key in result["refused"]:   # "<operation>: <exception>"; the child let nothing else through
        operation, exception = key.split(": ")
        assert exception in {"ValueError", "BufferError", "PermissionError", "TypeError", "IndexError",
                             "MappingFaultError", "OSError"}
        assert exception != "OSError" or operation not in reads, key   # only locks and advice meet OSError


# ---- 2. another process truncating and re-extending the files under every public operation ------------

TRUNCATOR = r"""
import os, random, sys, time
seconds, paths = float(sys.argv[1]), sys.argv[2:]
files = [(os.open(p, os.O_RDWR), open(p, "rb").read()) for p in paths]
rng, cuts, end = random.Random(7), 0, time.monotonic() + seconds
P = os.sysconf("SC_PAGE_SIZE")
while time.monotonic() < end:
    for fd, data in files:
        cut = rng.choice([0, rng.randrange(len(data)), rng.randrange(len(data)) // P * P, len(data) // 2 + 1])
        os.ftruncate(fd, cut)                  # cut it short ...
        cuts += 1
        time.sleep(rng.random() * 3e-4)
        os.ftruncate(fd, len(data))            # ... then grow it back (zeros) and restore the bytes
        os.pwrite(fd, data[cut:], cut)
        time.sleep(rng.random() * 1e-4)
print(cuts)
"""

TRUNCATE = r"""
import collections, errno, json, os, random, struct, subprocess, sys, tempfile, threading, time, traceback, zipfile
import numpy as np
import mmio

P = mmio.PAGE_SIZE
d = tempfile.mkdtemp()
N = 256 * P
PAT = (np.arange(5 << 18) % 251 + 1).astype(np.uint8)    # no zero byte: a zero is a re-extended hole
raw = os.path.join(d, "raw.bin"); PAT[:N].tofile(raw)
big = os.path.join(d, "big.npy"); np.save(big, PAT)        # 1.25 MiB: loads map it and copy in parallel
small = os.path.join(d, "small.npy"); np.save(small, PAT[:16 * P])   # read with pread
npz = os.path.join(d, "z.npz"); np.savez(npz, a=PAT, b=PAT[:10])     # stored members, mapped lazily
header = json.dumps({"t": {"dtype": "U8", "shape": [len(PAT)], "data_offsets": [0, len(PAT)]}}).encode()
st = os.path.join(d, "t.safetensors")
open(st, "wb").write(struct.pack("<Q", len(header)) + header + PAT.tobytes())
FILES = [raw, big, small, npz, st]
RAW = PAT[:N]

r, w, c = mmio.open(raw), mmio.open(raw, "r+"), mmio.open(raw, "c")
r_arr, w_arr = r.array(), w.array()                  # raw views: never indexed here (unguarded by design)
source, scratch = mmio.anonymous(N), mmio.anonymous(N)
source[:] = RAW.tobytes()                             # what copy_into_array writes back: the file's bytes
outs = collections.defaultdict(lambda: np.empty(len(PAT), np.uint8))  # one out= per thread: a shared one races


def fits(got, expected):
    # every byte is the file's byte, or zero (the truncator re-extended the file and not yet rewritten it)
    got = np.frombuffer(bytes(got), np.uint8) if not isinstance(got, np.ndarray) else got.reshape(-1)
    expected = expected.reshape(-1)[:len(got)]
    bad = np.flatnonzero((got != expected) & (got != 0))
    if len(bad):
        raise AssertionError(f"wrong bytes: {len(bad)} of {len(got)}, first at {bad[0]}: "
                             f"{got[bad[0]:bad[0] + 8].tolist()} for {expected[bad[0]:bad[0] + 8].tolist()}")


def index(a, b): fits(bytes([r[a]]), RAW[a:a + 1])
def slice_(a, b): fits(r[a:b], RAW[a:b])
def backwards(a, b): fits(r[b - 1:a:-3] if b - 1 > a else b"", RAW[b - 1:a:-3] if b - 1 > a else RAW[:0])
def whole(a, b): fits(r[:], RAW)                                     # the GIL-free copy
def readinto(a, b):
    buf = bytearray(b - a)
    fits(buf[:r.readinto(buf, a, threads=2)], RAW[a:b])
def write(a, b): w[a:b] = RAW[a:b]
def write_byte(a, b): w[a] = int(RAW[a])
def write_strided(a, b): w[a:b:5] = RAW[a:b:5].tobytes()
def populate(a, b): r.populate(threads=2)
def populate_write(a, b): c.populate(a, b - a, write=True)
def lock(a, b):
    r.lock()
    r.unlock()
def lock_on_fault(a, b): r.lock(a, b - a, on_fault=True); r.unlock(a, b - a)
def sync(a, b): w.sync(a, b - a); w.sync(wait=False)
def residency(a, b): r.residency(); mmio.residency(r_arr)
def advise(a, b): r.advise("willneed", a, b - a); r.prefetch(a, b - a)
def touch(a, b): mmio.touch(raw)
def touch_populate(a, b): mmio.touch(raw, a, b - a, method="populate")
def file_residency(a, b): mmio.residency(raw); mmio.cache_stat(raw)
def evict(a, b): mmio.evict(raw)
def load_copy(a, b): fits(mmio.load(big, copy=True, threads=2), PAT)
def load_small(a, b): fits(mmio.load(small, copy=True), PAT[:16 * P])
def load_out(a, b): fits(mmio.load(big, out=outs[threading.get_ident()], threads=2), PAT)
def load_populate(a, b): mmio.load(big, populate=True, threads=2)
def load_npz(a, b):
    with mmio.load(npz, copy=True) as z:        # lazy: each member is copied from the mapping when read
        fits(z["a"], PAT)
def load_safetensors(a, b): fits(mmio.load(st, copy=True, threads=2)["t"], PAT)
def load_view_guarded(a, b):
    # a zero-copy array, used only through mmio's guarded paths
    x = mmio.load(big)
    m = x.base.mapping
    m.populate(threads=2)
    buf = bytearray(b - a)
    fits(buf[:m.readinto(buf, a)], PAT[a:b])
    fits(m[a:b], PAT[a:b])
    mmio.residency(x); mmio.advise(x, "willneed")
    mmio.lock(x); mmio.unlock(x)
def copy_from_array(a, b): scratch[a:b] = r_arr[a:b]       # guarded on the array's side too
def copy_into_array(a, b): source.readinto(w_arr[a:b], a)  # guarded on the array's side too
def open_populate(a, b):
    with mmio.open(raw, "c", populate=True) as q:
        fits(q[a:b], RAW[a:b])
def open_array(a, b): mmio.open_array(raw, "u1").base.mapping.populate()

OPS = [index, slice_, backwards, whole, readinto, write, write_byte, write_strided, populate, populate_write,
       lock, lock_on_fault, sync, residency, advise, touch, touch_populate, file_residency, evict, load_copy,
       load_small, load_out, load_populate, load_npz, load_safetensors, load_view_guarded, copy_from_array,
       copy_into_array, open_populate, open_array]
LOADS = {load_copy, load_small, load_out, load_populate, load_npz, load_safetensors, load_view_guarded}
SIZED = {touch_populate}                              # a range the file, cut short, no longer holds

stop = threading.Event()
failures, examples = [], {}
results = [collections.Counter() for _ in range(2)]


def worker(seed, counts):
    rng = random.Random(seed)
    i = 0
    try:
        while not stop.is_set():
            op = OPS[i % len(OPS)]
            i += 1
            a = rng.randrange(N - 1)
            b = rng.randrange(a + 1, min(N, a + rng.choice([100, 8 * P, N])) + 1)
            name = op.__name__.rstrip("_")
            try:
                op(a, b)
                counts[name + " ok"] += 1
            except mmio.MappingFaultError as e:
                assert e.errno == errno.EFAULT, e
                counts[name + " fault"] += 1
                examples.setdefault(name + " fault", str(e))
            except OSError as e:
                counts[name + " oserror"] += 1
                examples.setdefault(f"{name} {type(e).__name__}", str(e))
            except ValueError as e:
                # a header cut short, or data the file no longer holds: the loaders say so, naming the file
                assert (op in LOADS and os.path.dirname(raw) in str(e)
                        or op in SIZED and "outside the file" in str(e)), f"{name}: {e!r}"
                counts[name + " valueerror"] += 1
                examples.setdefault(name + " ValueError", str(e))
    except BaseException:
        failures.append(traceback.format_exc())
        stop.set()


cutter = subprocess.Popen([sys.executable, "-c", TRUNCATOR, str(SECONDS), *FILES], stdout=subprocess.PIPE,
                          text=True)
threads = [threading.Thread(target=worker, args=(i, results[i])) for i in range(2)]
for t in threads:
    t.start()
start = time.monotonic()
while not stop.is_set():
    time.sleep(0.05)
    total = sum(results, collections.Counter())
    tried = {name.rsplit(" ", 1)[0] for name in total}
    if cutter.poll() is not None and len(tried) == len(OPS) and total and any(k.endswith(" fault") for k in total):
        break
    if time.monotonic() - start > 60:
        failures.append(f"no progress: {dict(total)}")
        break
stop.set()
for t in threads:
    t.join()
cuts = int(cutter.communicate()[0])
if failures:
    print("FAILED", *failures, sep="\n")
    sys.exit(1)
total = sum(results, collections.Counter())
print("SUMMARY " + json.dumps({"truncations": cuts, "operations": sum(total.values()), "per_op": dict(total),
                               "examples": examples, "seconds": round(time.monotonic() - start, 2)}))
"""


def test_files_truncated_under_every_operation_raise_instead_of_dying():
    proc = run_python(setup=f"TRUNCATOR = {TRUNCATOR!r}\nSECONDS = {TRUNCATE_SECONDS}\n", code=TRUNCATE,
                      check=False)
    assert proc.returncode == 0, f"child died ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    result = summary(proc)
    assert result["truncations"] > 0
    ops = {key.rsplit(" ", 1)[0] for key in result["per_op"]}
    assert len(ops) == 30
    assert any(key.endswith(" fault") for key in result["per_op"])   # the truncations did bite


# ---- 3. leak loops: descriptors, mappings and memory stay flat ------------------------------------------

LEAKS = r"""
import gc, json, os, struct, sys, tempfile, time
import numpy as np
import mmio

P = mmio.PAGE_SIZE
d = tempfile.mkdtemp()
raw = os.path.join(d, "raw.bin"); open(raw, "wb").write(os.urandom(64 * P))
big = os.path.join(d, "big.npy"); np.save(big, np.arange(300_000.0))          # 2.4 MB: mapped, parallel copies
small = os.path.join(d, "small.npy"); np.save(small, np.arange(100.0))        # read with pread
npz = os.path.join(d, "z.npz"); np.savez(npz, a=np.arange(300_000.0), b=np.ones(10))
header = json.dumps({"t": {"dtype": "F64", "shape": [200_000], "data_offsets": [0, 1_600_000]}}).encode()
st = os.path.join(d, "t.safetensors")
open(st, "wb").write(struct.pack("<Q", len(header)) + header + np.arange(200_000.0).tobytes())
fifo = os.path.join(d, "fifo"); os.mkfifo(fifo)
missing = os.path.join(d, "missing")
hostile = [os.path.join(HOSTILE, name) for name in sorted(os.listdir(HOSTILE))]   # tests/test_hostile.py's
read_only_fd = os.open(raw, os.O_RDONLY)
counts = dict.fromkeys(["opens", "loads", "failed opens", "failed loads", "refusals"], 0)


def refused(action, *errors):
    try:
        action()
    except errors or (OSError, ValueError, TypeError, BufferError):
        counts["refusals"] += 1
    else:
        raise AssertionError(f"{action} was not refused")


def mappings():
    with mmio.open(raw) as m:
        m[0:10]
        m.populate(threads=2)
    m = mmio.open(raw, "r+")
    a = m.array("u8")
    a[0] += 0
    refused(m.close, BufferError)
    refused(lambda: m.resize(P), BufferError)
    del a
    m.lock(0, P); m.unlock(); m.protect("r", 0, P); m.protect("rw"); m.sync()
    m.close()
    m = mmio.open(raw, "c", populate=True)
    m.resize(32 * P); m.resize(64 * P)
    m.close()
    with mmio.anonymous(16 * P) as m:
        m.populate(write=True, threads=2)
        m.residency()
    with open(raw, "rb") as f, mmio.open(f) as m:                  # a file object: mmio duplicates it
        m.regions()
    mmio.open_array(raw, "u8")
    mmio.create(os.path.join(d, "new.npy"), (100, 100), "f4")
    counts["opens"] += 7


def loads():
    for path in (big, npz, st):
        for kwargs in ({}, {"copy": True, "threads": 2}, {"populate": True, "threads": 2}):
            got = mmio.load(path, **kwargs)
            if isinstance(got, np.ndarray):
                got[:2].sum()
            else:
                next(iter(got.values()))[:2].sum()
            del got
    with mmio.load(npz) as z:
        z["a"][0]
    mmio.load(small, copy=True)
    mmio.load(big, out=np.empty(300_000))
    mmio.touch(raw); mmio.residency(raw); mmio.evict(raw)
    counts["loads"] += 12


def failing_opens():
    refused(lambda: mmio.open(missing), FileNotFoundError)
    refused(lambda: mmio.open(d), IsADirectoryError)
    refused(lambda: mmio.open(d, "w+", size=10), IsADirectoryError)
    refused(lambda: mmio.open(os.path.join(missing, "x"), "w+", size=10), FileNotFoundError)
    refused(lambda: mmio.open(fifo))
    refused(lambda: mmio.open(raw, length=65 * P), ValueError)
    refused(lambda: mmio.open(raw, offset=65 * P), ValueError)
    refused(lambda: mmio.open(raw, advice="bogus"), ValueError)
    refused(lambda: mmio.open(read_only_fd, "r+"), PermissionError)
    refused(lambda: mmio.open(1 << 20))
    refused(lambda: mmio.open_array(raw, "f8", shape=10 ** 6), ValueError)
    refused(lambda: mmio.touch(d), IsADirectoryError)
    refused(lambda: mmio.residency(missing), FileNotFoundError)
    refused(lambda: mmio.cache_stat(fifo))
    with mmio.open(raw) as m:
        refused(lambda: m.resize(128 * P), ValueError)
        refused(lambda: m.protect("rw"), PermissionError)
        refused(lambda: m.array("O"), ValueError)
        refused(lambda: m[64 * P], IndexError)
    counts["failed opens"] += 18


def load_all(path, **kwargs):
    got = mmio.load(path, **kwargs)
    if hasattr(got, "files"):           # .npz members are read lazily: a bad one fails when it is read
        [got[name] for name in got.files]


def failing_loads():
    for path in [missing, d, fifo, raw] + hostile:
        refused(lambda: load_all(path), OSError, ValueError)
        refused(lambda: load_all(path, copy=True, threads=2), OSError, ValueError)
        counts["failed loads"] += 2


def state():
    gc.collect()
    fds = len(os.listdir("/proc/self/fd"))
    with open("/proc/self/maps") as f:
        maps = len(f.readlines())
    with open("/proc/self/statm") as f:
        rss = int(f.read().split()[1]) * P
    return fds, maps, rss


def rounds(n):
    for _ in range(n):
        mappings(); loads(); failing_opens(); failing_loads()


start = time.monotonic()
rounds(10)                                      # warm-up: caches, arenas, the SIGBUS handler
counts = dict.fromkeys(counts, 0)
before = state()
rounds(ROUNDS)
after = state()
print("SUMMARY " + json.dumps({"rounds": ROUNDS, **{k: v for k, v in counts.items()}, "fds": [before[0], after[0]],
                               "maps_lines": [before[1], after[1]], "rss": [before[2], after[2]],
                               "seconds": round(time.monotonic() - start, 2)}))
"""


@pytest.mark.not_under_sanitizer  # ASan's allocator maps memory of its own and quarantines what is freed
def test_open_load_and_fail_loops_leak_nothing(tmp_path):
    from test_hostile import CASES
    for name, data in CASES.items():
        (tmp_path / name).write_bytes(data)
    proc = run_python(setup=f"HOSTILE = {str(tmp_path)!r}\nROUNDS = {LEAK_ITERATIONS}\n", code=LEAKS)
    result = summary(proc)
    assert result["failed loads"] >= 2 * LEAK_ITERATIONS * len(CASES)
    fds, maps, rss = result["fds"], result["maps_lines"], result["rss"]
    assert fds[1] == fds[0]                        # every descriptor closed
    assert abs(maps[1] - maps[0]) <= 2             # every mapping unmapped (allocator arenas may move a line)
    assert rss[1] - rss[0] < 16 << 20              # each round maps, copies and drops ~20 MB


# ---- races the stress tests found: minimal reproducers, each in a child process ----------------------------
# resize() to or from size 0 ran mmap with the GIL released while the mapping was half replaced; protect() and
# advise() checked their range, then ran Python code (enum methods) before the syscall, where another thread
# could resize the mapping under them.


def test_resize_through_zero_racing_resize_leaks_no_mapping():
    proc = run_python("""
        import os, tempfile, threading, mmio
        path = os.path.join(tempfile.mkdtemp(), "f.bin")
        open(path, "wb").write(bytes(1 << 16))
        leaked = 0
        for _ in range(20):
            m = mmio.open(path, "r+")
            def flip():
                for _ in range(2000):
                    m.resize(0)
                    m.resize(1 << 16)
            threads = [threading.Thread(target=flip) for _ in range(2)]
            for t in threads: t.start()
            for t in threads: t.join()
            m.close()
            leaked = sum(path in line for line in open("/proc/self/maps"))   # expected: 0
            if leaked:
                break
        print("mappings left after close:", leaked)
    """)
    assert proc.stdout.strip() == "mappings left after close: 0"


def test_close_racing_resize_from_zero_leaves_the_mapping_closed():
    proc = run_python("""
        import os, sys, tempfile, threading, time, mmio
        sys.setswitchinterval(1e-6)
        path = os.path.join(tempfile.mkdtemp(), "f.bin")
        open(path, "wb").write(bytes(1 << 18))
        outcome = set()
        for _ in range(300):
            m = mmio.open(path, "r+")
            def flip():
                try:
                    while True:
                        m.resize(0)
                        m.resize(1 << 18)
                except Exception as e:                # expected: ValueError("mapping is closed")
                    outcome.add(f"{type(e).__name__}: {e}"[:40])
            t = threading.Thread(target=flip)
            t.start()
            time.sleep(0.001)
            m.close()
            t.join()
            if not m.closed:                          # expected: closed, since close() returned
                outcome.add("open after close(): " + repr(m))
                break
        print(sorted(outcome))
    """)
    assert proc.stdout.strip() == "['ValueError: mapping is closed']"


# The profile hook stands for that other thread: it runs at the first Python call inside protect()/advise(),
# where a real thread can take the GIL (the threaded form of the same crash takes about a second to hit).
ANOTHER_THREAD = """
import sys, mmio
P = mmio.PAGE_SIZE
def another_thread_at(name, action):
    def hook(frame, event, arg):
        if event == "call" and frame.f_code.co_name == name:
            sys.setprofile(None)
            try:
                action()
            except BufferError:            # the mapping is held: the race is closed
                pass
    sys.setprofile(hook)
"""


def test_protect_racing_resize_never_crashes():
    proc = run_python(setup=ANOTHER_THREAD, code="""
        m = mmio.anonymous(64 * P, shared=False)
        another_thread_at("__and__", lambda: m.resize(8 * P))
        try:
            m.protect("r")          # the 8 pages m has now become read-only (and mmio knows it)
        except OSError as e:
            print("refused:", e, "- mmio says", repr(m.protection), flush=True)
        try:
            m[0] = 1                # TypeError (it was a SIGSEGV)
        except TypeError:
            pass
        print("alive")
    """, check=False)
    assert proc.returncode == 0 and proc.stdout.endswith("alive\n"), (proc.returncode, proc.stdout)


def test_advise_racing_resize_discards_only_its_own_pages():
    proc = run_python(setup=ANOTHER_THREAD, code="""
        m = mmio.anonymous(64 * P, shared=False)
        m.populate(write=True)
        other = []
        def shrink_and_map_more():
            m.resize(8 * P)
            other.append(mmio.anonymous(56 * P, shared=False))   # the kernel may place it where m's tail was
            other[0][:] = b"\\1" * (56 * P)
        another_thread_at("throws_away", shrink_and_map_more)
        try:
            m.advise("dontneed", discard=True)                   # m's 8 pages go, nothing else
        except OSError as e:
            print("refused:", e)
        print("other mapping intact:", other[0][:] == b"\\1" * (56 * P))   # (they were zeroed)
    """)
    assert proc.stdout == "other mapping intact: True\n"
