"""Model weights: a sharded BF16 checkpoint written by the safetensors package from torch tensors, loaded by
the tools people use (safetensors' own loaders) and by mmio, warm and cold, side by side in one run.

The groups need torch (``pip install torch``, a CPU build is enough) and safetensors; without them they are
left out, saying so.
"""

from __future__ import annotations

import json
import os
import subprocess

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


def make_checkpoint(directory: str, size_mib: int) -> dict:
    """A BF16 checkpoint of ``size_mib`` MiB in SHARDS shards with its index, and an F32 twin of the same
    bytes for ``safetensors.numpy`` (which has no BF16)."""
    import torch
    from safetensors.torch import save_file
    torch.manual_seed(0)
    per_shard = (size_mib << 20) // SHARDS
    rows = max(1, per_shard // (2 * 4096 * 4))  # four BF16 matrices of rows x 4096 per shard
    weight_map, shards, twins = {}, [], []
    for s in range(SHARDS):
        name = f"model-{s + 1:05d}-of-{SHARDS:05d}.safetensors"
        tensors = {f"layers.{s}.w{k}": torch.randn(rows, 4096).to(torch.bfloat16) for k in range(4)}
        save_file(tensors, os.path.join(directory, name), metadata={"format": "pt"})
        twin = os.path.join(directory, f"f32-{name}")
        save_file({k: v.float()[:, :2048].contiguous() for k, v in tensors.items()}, twin)  # same bytes
        weight_map.update(dict.fromkeys(tensors, name))
        shards.append(os.path.join(directory, name))
        twins.append(twin)
    index = os.path.join(directory, "model.safetensors.index.json")
    with open(index, "w") as f:
        json.dump({"metadata": {"total_size": sum(os.path.getsize(p) for p in shards)}, "weight_map": weight_map}, f)
    for path in shards + twins:
        with open(path, "rb+") as f:
            os.fsync(f.fileno())
    return {"index": index, "shards": shards, "twins": twins, "nbytes": sum(os.path.getsize(p) for p in shards)}


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


def group_weights(checkpoint: dict, rounds: int) -> list[dict]:
    """Warm: every tensor of the checkpoint, from the page cache."""
    from safetensors import safe_open
    from safetensors.numpy import load_file as load_numpy
    from safetensors.torch import load_file
    shards, twins, index = checkpoint["shards"], checkpoint["twins"], checkpoint["index"]

    def safe_open_every():
        out = []
        for path in shards:
            with safe_open(path, framework="pt") as f:
                out += [f.get_tensor(k) for k in f.keys()]
        return out

    cases = {
        "safetensors.torch.load_file": lambda: [load_file(p) for p in shards],
        "safe_open(pt), every tensor": safe_open_every,
        "safetensors.numpy.load_file (F32 twin)": lambda: [load_numpy(p) for p in twins],
        "mmio.load(torch)": lambda: _every(mmio.load(index, framework="torch")),
        "load_file + clone": lambda: [{k: v.clone() for k, v in load_file(p).items()} for p in shards],
        "mmio.load(torch, copy, threads=2)": lambda: _every(mmio.load(index, framework="torch", copy=True,
                                                                      threads=2)),
    }
    for path in shards + twins:
        mmio.touch(path)
    for case in cases.values():  # imports and first-call costs out of the timed rounds
        case()
    samples = interleaved(cases, rounds)
    return summarize(samples, checkpoint["nbytes"], "safetensors.torch.load_file")


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

