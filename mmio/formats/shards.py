"""The index of a sharded safetensors checkpoint (``model.safetensors.index.json``).

A JSON object with a ``"weight_map"`` from tensor name to the shard file that holds it (a path relative to the
index's directory) and an optional ``"metadata"`` object. The index describes no bytes itself: ``load`` reads
each shard's header through the safetensors describer and maps each shard once, when a tensor of it is first
asked for.
"""

from __future__ import annotations

import json
import os
from typing import NamedTuple

from . import HEAD, ReadAt, bad, collector_paused

NAME = "safetensors index"

MAX_INDEX = 100_000_000
"""Size limit of an index file, as for a safetensors header."""


class ShardIndex(NamedTuple):
    """A sharded checkpoint: tensor name -> shard file (as the index names it), and the index's metadata."""

    weight_map: dict[str, str]
    metadata: dict


def sniff(head: bytes) -> bool:
    """Whether a file starting with ``head`` looks like a checkpoint index: a JSON object naming a weight map
    in its first bytes (as every index written by ``transformers`` and ``safetensors`` does)."""
    return head.lstrip(b" \t\r\n")[:1] == b"{" and b'"weight_map"' in head[:HEAD]


def read_index(read_at: ReadAt, size: int, path) -> ShardIndex:
    """Parse and check an index file of ``size`` bytes.

    Raises
    ------
    ValueError
        Naming ``path``: not JSON, no ``weight_map`` object of name -> file name, or a file name that
        leaves the index's directory (absolute, or through ``..``).
    """
    if size > MAX_INDEX:
        raise bad(path, f"checkpoint index of {size} bytes is larger than the limit ({MAX_INDEX})")
    try:
        with collector_paused():
            index = json.loads(read_at(0, size))
    except (ValueError, RecursionError) as exc:
        raise bad(path, f"checkpoint index is not valid JSON: {exc}") from None
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        raise bad(path, "checkpoint index has no weight_map object of tensor name -> shard file")
    for shard in set(weight_map.values()):
        if not shard or os.path.isabs(shard) or ".." in shard.split("/") or "\0" in shard:
            raise bad(path, f"shard {shard!r} is not a file name inside the index's directory")
    metadata = index.get("metadata")
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        raise bad(path, "checkpoint index metadata must be an object")
    return ShardIndex(weight_map, metadata)
