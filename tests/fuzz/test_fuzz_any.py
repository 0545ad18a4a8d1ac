"""Arbitrary bytes behind each format's first bytes: whatever the sniffing picks, the contract holds."""

from hypothesis import given
from hypothesis import strategies as st

import fuzzlib
from fuzzlib import check_hostile

PREFIXES = {b"": None, b"\x93NUMPY\x01\x00": "npy", b"\x93NUMPY\x02\x00": "npy", b"\x93NUMPY\x03\x00": "npy",
            b"PK\x03\x04": "npz", b"PK\x05\x06": "npz", b"\x20\x00\x00\x00\x00\x00\x00\x00{": "safetensors"}


@given(st.sampled_from(sorted(PREFIXES)), st.binary(max_size=300), st.sampled_from(fuzzlib.FILE_STEMS))
def test_arbitrary_bytes(prefix, tail, stem):
    check_hostile(prefix + tail, PREFIXES[prefix], stem=stem)
