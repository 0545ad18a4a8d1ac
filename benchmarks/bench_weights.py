"""Model weights: a sharded BF16 checkpoint written by the safetensors package from torch tensors, loaded by
the tools people use (safetensors' own loaders) and by mmio, warm and cold, side by side in one run.

The groups need torch (``pip install torch``, a CPU build is enough) and safetensors; without them they are
left out, saying so.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import mmio

from ._timing import interleaved, summarize

SHARDS = 4
PAGE = mmio.PAGE_SIZE


def available() -> str | None:
    """Why the weights groups cannot run here, or None."""
    try:
        import safetensors.torch  # noqa: F401
        import torch  # noqa: F401
    except ImportError as exc:
        return f"needs torch and safetensors ({exc})"
    return None


def _layer(width: int) -> dict[str, tuple[int, ...]]:
    """The tensor shapes of one transformer block: attention, MLP and norms, as checkpoints ship them."""
    hidden = width * 11 // 4
    return {"self_attn.q_proj.weight": (width, width), "self_attn.k_proj.weight": (width, width),
            "self_attn.v_proj.weight": (width, width), "self_attn.o_proj.weight": (width, width),
            "mlp.gate_proj.weight": (hidden, width), "mlp.up_proj.weight": (hidden, width),
            "mlp.down_proj.weight": (width, hidden), "input_layernorm.weight": (width,),
            "post_attention_layernorm.weight": (width,)}


def make_checkpoint(directory: str, size_mib: int) -> dict:
    """A BF16 checkpoint of about ``size_mib`` MiB in SHARDS shards with its index: transformer blocks (9
    tensors each, ~190 per shard at 2 GiB, as a 7B model's shards have), and an F32 twin of each shard
    holding the same bytes for ``safetensors.numpy`` (which has no BF16)."""
    import torch
    from safetensors.torch import save_file
    torch.manual_seed(0)
    width = 1024 if size_mib >= 256 else 128
    layer = _layer(width)
    layer_bytes = 2 * sum(math.prod(shape) for shape in layer.values())
    blocks = max(1, (size_mib << 20) // SHARDS // layer_bytes)
    weight_map, shards, twins = {}, [], []
    for s in range(SHARDS):
        name = f"model-{s + 1:05d}-of-{SHARDS:05d}.safetensors"
        tensors = {f"model.layers.{s * blocks + b}.{key}": torch.randn(shape).to(torch.bfloat16)
                   for b in range(blocks) for key, shape in layer.items()}
        save_file(tensors, os.path.join(directory, name), metadata={"format": "pt"})
        twin = os.path.join(directory, f"f32-{name}")
        save_file({k: v.view(torch.float32) for k, v in tensors.items()}, twin)  # the same bytes, as F32
        weight_map.update(dict.fromkeys(tensors, name))
        shards.append(os.path.join(directory, name))
        twins.append(twin)
    index = os.path.join(directory, "model.safetensors.index.json")
    with open(index, "w") as f:
        json.dump({"metadata": {"total_size": sum(os.path.getsize(p) for p in shards)}, "weight_map": weight_map}, f)
    for path in shards + twins:
        with open(path, "rb+") as f:
            os.fsync(f.fileno())
    return {"index": index, "shards": shards, "twins": twins, "tensors": len(weight_map),
            "nbytes": sum(os.path.getsize(p) for p in shards)}


def _every(tensors):
    """Touch every tensor of a (lazy) container, as a load that returns all of them does."""
    return [tensors[name] for name in tensors]


def _first_read(tensors) -> int:
    """Read one byte of every page of every tensor (the first read a cold load makes)."""
    import torch
    total = 0
    for t in tensors:
        flat = t.view(torch.uint8).reshape(-1)
        total += int(flat[::PAGE].sum())
    return total


INNER = 10
"""Loads timed together per zero-copy sample: one takes about a millisecond."""


def group_weights(checkpoint: dict, rounds: int) -> list[dict]:
    """Warm, zero-copy: every tensor of the checkpoint, from the page cache (``INNER`` loads per sample)."""
    from safetensors import safe_open
    from safetensors.torch import load_file
    shards, index = checkpoint["shards"], checkpoint["index"]

    def safe_open_every():
        out = []
        for path in shards:
            with safe_open(path, framework="pt") as f:
                out += [f.get_tensor(k) for k in f.keys()]
        return out

    cases = {
        "safetensors.torch.load_file": lambda: [load_file(p) for p in shards],
        "safe_open(pt), every tensor": safe_open_every,
        "mmio.load(torch)": lambda: _every(mmio.load(index, framework="torch")),
    }
    _warm(checkpoint, cases)
    samples = interleaved(cases, rounds, inner=INNER)
    return summarize(samples, checkpoint["nbytes"], "safetensors.torch.load_file")


def group_weights_copy(checkpoint: dict, rounds: int) -> list[dict]:
    """Warm, private copies: tensors (or arrays) owning their memory."""
    from safetensors.numpy import load_file as load_numpy
    from safetensors.torch import load_file
    shards, twins, index = checkpoint["shards"], checkpoint["twins"], checkpoint["index"]
    cases = {
        "load_file + clone": lambda: [{k: v.clone() for k, v in load_file(p).items()} for p in shards],
        "safetensors.numpy.load_file (F32 twin)": lambda: [load_numpy(p) for p in twins],
        "mmio.load(torch, copy, threads=2)": lambda: _every(mmio.load(index, framework="torch", copy=True,
                                                                      threads=2)),
    }
    _warm(checkpoint, cases)
    samples = interleaved(cases, rounds)
    return summarize(samples, checkpoint["nbytes"], "load_file + clone")


_FIRST_COPY = """
import json, sys, time
import torch, mmio
from safetensors.torch import load_file
checkpoint = json.loads(sys.argv[1])
mmio.load(checkpoint["shards"][0], framework="torch")  # code paths (not the copy) warmed up, untimed
start = time.perf_counter()
if sys.argv[2] == "clone":
    tensors = [{k: v.clone() for k, v in load_file(p).items()} for p in checkpoint["shards"]]
else:
    loaded = mmio.load(checkpoint["index"], framework="torch", copy=True, threads=2)
    tensors = [loaded[k] for k in loaded]
print(time.perf_counter() - start)
"""


def group_weights_first(checkpoint: dict, rounds: int) -> list[dict]:
    """Private copies as a program makes them once: each load in a fresh interpreter (imports untimed), into
    memory the process has never used, which the allocator cannot recycle."""
    cases = {"load_file + clone": "clone", "mmio.load(torch, copy, threads=2)": "mmio"}
    arguments = json.dumps({"index": checkpoint["index"], "shards": checkpoint["shards"]})
    for path in checkpoint["shards"]:
        mmio.touch(path)
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, how in cases.items():
            child = subprocess.run([sys.executable, "-c", _FIRST_COPY, arguments, how], capture_output=True,
                                   text=True, check=True)
            samples[name].append(float(child.stdout))
    return summarize(samples, checkpoint["nbytes"], "load_file + clone")


def _warm(checkpoint: dict, cases: dict) -> None:
    """Every file in the page cache, and every case run once (imports and first-call costs untimed)."""
    for path in checkpoint["shards"] + checkpoint["twins"]:
        mmio.touch(path)
    for case in cases.values():
        case()


def group_weights_cold(checkpoint: dict, rounds: int) -> list[dict]:
    """Cold: every shard evicted (and checked) before each case; load + a first read of every page."""
    from safetensors.torch import load_file
    shards, index = checkpoint["shards"], checkpoint["index"]
    left: list[float] = []

    def evict_all():
        fractions = []
        for path in shards:
            mmio.evict(path)
            fractions.append(mmio.residency(path).fraction)
        left.append(max(fractions))

    cases = {
        "safetensors.torch.load_file + read": lambda: _first_read(
            [t for p in shards for t in load_file(p).values()]),
        "mmio.load(torch) + read": lambda: _first_read(_every(mmio.load(index, framework="torch"))),
        "mmio.load(torch, populate, threads=2) + read": lambda: _first_read(
            _every(mmio.load(index, framework="torch", populate=True, threads=2))),
        "cat > /dev/null": lambda: subprocess.run(["cat", *shards], stdout=subprocess.DEVNULL, check=True),
    }
    samples = interleaved(cases, rounds, before=evict_all)
    extra = {name: {"max_resident_before": max(left)} for name in cases}
    return summarize(samples, checkpoint["nbytes"], "safetensors.torch.load_file + read", extra)

