"""Model weights as people ship them: sharded safetensors checkpoints (formats/shards.py, ShardedArrays) and
torch tensors (framework="torch", mmio/_torch.py)."""

import gc
import json
import os

import numpy as np
import pytest
from safetensors.numpy import save_file

import mmio
from conftest import run_python

SHARDS = {
    "model-00001-of-00002.safetensors": {"embed": np.arange(12, dtype=np.float32).reshape(3, 4),
                                         "norm": np.ones(4, np.float16)},
    "model-00002-of-00002.safetensors": {"head": np.arange(8, dtype=np.int64).reshape(2, 4)},
}


def checkpoint(directory, shards=SHARDS, weight_map=None, metadata=None):
    """Write the shards and their index; return the index's path."""
    for name, tensors in shards.items():
        save_file(tensors, str(directory / name), metadata={"format": "pt"})
    if weight_map is None:
        weight_map = {tensor: name for name, tensors in shards.items() for tensor in tensors}
    index = directory / "model.safetensors.index.json"
    index.write_text(json.dumps({"metadata": metadata or {"total_size": 128}, "weight_map": weight_map}, indent=2))
    return index


def mappings_of(path) -> int:
    """How many lines of /proc/self/maps map ``path``."""
    with open("/proc/self/maps") as f:
        return sum(line.rstrip("\n").endswith(str(path)) for line in f)


# ---- sharded checkpoints -------------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs", [{}, {"copy": True}, {"copy": True, "threads": 2}, {"mode": "c"}])
def test_an_index_loads_every_tensor_of_every_shard(tmp_path, kwargs):
    tensors = mmio.load(checkpoint(tmp_path), **kwargs)
    assert isinstance(tensors, mmio.arrays.ShardedArrays)
    assert sorted(tensors) == ["embed", "head", "norm"] and tensors.metadata == {"total_size": 128}
    for shard in SHARDS.values():
        for name, want in shard.items():
            assert tensors[name].dtype == want.dtype and np.array_equal(tensors[name], want)
    assert tensors.files == [str(tmp_path / name) for name in sorted(SHARDS)]


def test_each_shard_is_mapped_once_and_only_when_needed(tmp_path):
    first, second = (tmp_path / name for name in sorted(SHARDS))
    tensors = mmio.load(checkpoint(tmp_path))
    assert mappings_of(first) == mappings_of(second) == 0
    embed = tensors["embed"]
    assert mappings_of(first) == 1 and mappings_of(second) == 0
    assert tensors["norm"].base.mapping is embed.base.mapping  # the same one mapping of the shard
    assert mappings_of(first) == 1


def test_populate_maps_every_shard_now_in_file_order(tmp_path):
    tensors = mmio.load(checkpoint(tmp_path), populate=True, threads=2)
    for name in SHARDS:
        assert mappings_of(tmp_path / name) == 1
    assert tensors["head"].base.mapping.residency().fraction == 1.0


def test_broken_checkpoints_are_refused_naming_the_files(tmp_path):
    index = checkpoint(tmp_path)
    first, second = (str(tmp_path / name) for name in sorted(SHARDS))
    wrong = {
        "missing shard": ({"embed": "model-00003-of-00003.safetensors"},
                          f"{index}: shard {tmp_path / 'model-00003-of-00003.safetensors'} is missing"),
        "absent tensor": ({"embed": sorted(SHARDS)[0], "gone": sorted(SHARDS)[0]},
                          f"{index}: tensor 'gone' is not in its shard {first}"),
        "wrong shard": ({"embed": sorted(SHARDS)[1], "norm": sorted(SHARDS)[0]},
                        f"{index}: tensor 'embed' is not in its shard {second} (it is in {first})"),
        "outside": ({"embed": "../elsewhere.safetensors"}, "is not a file name inside the index's directory"),
        "no map": (None, "has no weight_map object"),
    }
    for case, (weight_map, message) in wrong.items():
        body = {"weight_map": weight_map} if weight_map is not None else {"weight_map": [1]}
        index.write_text(json.dumps(body))
        with pytest.raises(ValueError) as info:
            mmio.load(index)
        assert message in str(info.value), case
    save_file({"embed": np.zeros(2, np.float32)}, second)  # the same name in two shards
    index.write_text(json.dumps({"weight_map": {"embed": sorted(SHARDS)[0], "norm": sorted(SHARDS)[1]}}))
    with pytest.raises(ValueError, match=f"tensor 'embed' is in two shards, {first} and {second}"):
        mmio.load(index)


# ---- torch -----------------------------------------------------------------------------------------------------

def test_torch_tensors_share_the_mapping_and_outlive_the_container(tmp_path):
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file as save_torch
    weights = {"w": torch.randn(64, 32, dtype=torch.bfloat16), "s": torch.randn(16).to(torch.float8_e4m3fn),
               "i": torch.arange(10), "f": torch.randn(3, 3)}
    path = tmp_path / "w.safetensors"
    save_torch(weights, str(path))
    tensors = mmio.load(path, framework="torch")
    for name, want in weights.items():
        got = tensors[name]
        assert isinstance(got, torch.Tensor) and got.dtype == want.dtype and got.shape == want.shape
        assert torch.equal(got.view(torch.uint8), want.view(torch.uint8))
    (region,) = [r for r in mmio.maps() if r.start <= tensors["w"].data_ptr() < r.end]
    assert region.path == str(path)  # zero-copy: the tensor's memory is the file's mapping
    w = tensors["w"]
    del tensors, got
    gc.collect()
    assert mappings_of(path) == 1  # the last tensor keeps the mapping
    w += 1  # the default mode is "c": writable, and the file keeps its bytes
    from safetensors.torch import load_file
    assert torch.equal(load_file(str(path))["w"], weights["w"])
    assert torch.equal(w, (weights["w"] + 1))
    with pytest.raises(ValueError, match="would crash"):
        mmio.load(path, "r", framework="torch")
    del w
    gc.collect()
    assert mappings_of(path) == 0


def test_torch_copies_own_their_memory_and_shards_come_as_tensors(tmp_path):
    torch = pytest.importorskip("torch")
    index = checkpoint(tmp_path)
    copied = mmio.load(tmp_path / sorted(SHARDS)[0], framework="torch", copy=True, threads=2)
    assert mappings_of(tmp_path / sorted(SHARDS)[0]) == 0
    assert torch.equal(copied["embed"], torch.from_numpy(SHARDS[sorted(SHARDS)[0]]["embed"]))
    sharded = mmio.load(index, framework="torch")
    assert isinstance(sharded["head"], torch.Tensor) and sharded.metadata == {"total_size": 128}
    assert torch.equal(sharded["head"], torch.arange(8).reshape(2, 4))


def test_torch_missing_is_an_import_error_that_says_so(tmp_path):
    path = tmp_path / "a.npy"
    np.save(path, np.arange(3))
    proc = run_python(f"""
        import sys
        sys.modules["torch"] = None   # as if not installed
        import mmio
        try:
            mmio.load({str(path)!r}, framework="torch")
        except ImportError as e:
            print("ImportError", "needs torch" in str(e))
        print(mmio.load({str(path)!r}).tolist())
    """)
    assert proc.stdout.splitlines() == ["ImportError True", "[0, 1, 2]"]
    with pytest.raises(ValueError, match="framework must be"):
        mmio.load(path, framework="jax")
    assert os.path.exists(path)
