"""``load(..., framework="torch")``: the arrays ``load`` made, as ``torch.Tensor`` objects over the same memory.

torch is imported only here, and only when asked for. A tensor made by ``torch.from_numpy`` holds its ndarray,
whose ``.base`` holds the mapping: the memory stays mapped while any tensor lives. Dtypes numpy has only through
``ml_dtypes`` (bfloat16, the float8 formats) cross as unsigned integers of their size and are viewed as torch's
own dtype of the same bits.
"""

from __future__ import annotations

import collections.abc
import functools

import numpy as np

from .formats.safetensors import ML_DTYPES


@functools.cache
def _torch():
    try:
        import torch
    except ImportError:
        raise ImportError("framework='torch' needs torch, which is not installed: "
                          "see https://pytorch.org for the build that suits your machine") from None
    return torch


@functools.cache
def _bit_views() -> dict:
    """``{ml_dtypes numpy dtype: (unsigned dtype of its size, torch dtype)}`` for the ones torch has: torch
    cannot take them from numpy, so their bits cross as unsigned integers (ml_dtypes.bfloat16 is
    torch.bfloat16, and so on). Empty without ml_dtypes (no array can have those dtypes then)."""
    try:
        import ml_dtypes
    except ImportError:
        return {}
    torch = _torch()
    views = {}
    for name in ML_DTYPES.values():
        if hasattr(ml_dtypes, name) and hasattr(torch, name):
            dtype = np.dtype(getattr(ml_dtypes, name))
            views[dtype] = (np.dtype(f"u{dtype.itemsize}"), getattr(torch, name))
    return views


def tensor(array):
    """One ndarray as a tensor sharing its memory (other values, such as a raw .npz member's bytes, as they
    are)."""
    if not isinstance(array, np.ndarray):
        return array
    torch = _torch()
    bits = _bit_views().get(array.dtype)
    if bits is not None:
        unsigned, torch_dtype = bits
        return torch.from_numpy(array.view(unsigned)).view(torch_dtype)
    try:
        return torch.from_numpy(array)
    except TypeError as exc:  # a dtype torch has no equivalent of: structured, byte-swapped, strings...
        raise ValueError(f"an array of dtype {array.dtype} cannot become a torch tensor: {exc}") from None


def tensors(result):
    """What ``load`` returned, with tensors for arrays: eagerly for a dict, on access for lazy containers."""
    if isinstance(result, np.ndarray):
        return tensor(result)
    if isinstance(result, dict):
        converted = type(result)((name, tensor(array)) for name, array in result.items())
        converted.metadata = result.metadata
        return converted
    _torch()  # fail now, not at the first access
    return TensorView(result)


class TensorView(collections.abc.Mapping):
    """A lazy container of ``load`` (``.npz`` members, a sharded checkpoint) whose arrays come out as tensors.

    Everything else (``metadata``, ``files``, ``path``, ``close``) is the container's own.
    """

    def __init__(self, arrays: collections.abc.Mapping) -> None:
        self._arrays = arrays

    def __getitem__(self, name):
        return tensor(self._arrays[name])

    def __iter__(self):
        return iter(self._arrays)

    def __len__(self) -> int:
        return len(self._arrays)

    def __contains__(self, name) -> bool:
        return name in self._arrays

    def __getattr__(self, name):
        return getattr(self._arrays, name)

    def __repr__(self):
        return f"<mmio tensors of {self._arrays!r}>"
