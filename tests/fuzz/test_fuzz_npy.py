""".npy: files numpy writes, headers numpy accepts, hostile headers and mutated bytes, all held to the contract."""

import os
import warnings

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

import fuzzlib
import mmio
import fuzz_strategies as s
from fuzzlib import check, check_hostile

STEMS = st.sampled_from(fuzzlib.FILE_STEMS)


@given(s.npy_files(), STEMS)
def test_npy_written_by_numpy_loads_exactly(case, stem):
    data, array = case
    check(data, "npy", stem=stem, expected={None: array})


@given(s.npy_handwritten(), STEMS)
def test_npy_headers_numpy_accepts_but_does_not_write(case, stem):
    data, array = case
    check(data, "npy", stem=stem)


@given(s.hostile_npy(), STEMS)
def test_npy_hostile_headers(data, stem):
    check_hostile(data, "npy", stem=stem)


@given(s.npy_files().flatmap(lambda case: s.mutated(case[0])), STEMS)
def test_npy_mutated_bytes(data, stem):
    check_hostile(data, "npy", stem=stem)


@given(s.arrays(), st.booleans())
def test_npy_created_by_mmio_reads_back_in_numpy_and_mmio(array, fortran):
    """mmio.create writes the header (build_header): numpy and mmio must both read it back exactly."""
    path = fuzzlib.case_path(".npy")
    created = mmio.create(path, array.shape, array.dtype, fortran_order=fortran)
    order = "F" if fortran else "C"
    raw = array.tobytes(order=order)
    if array.size:  # every byte, padding between fields included
        created.reshape(-1, order="A").view(np.uint8)[...] = np.frombuffer(raw, np.uint8)
    del created
    with open(path, "rb") as f:
        data = f.read()
    want = np.frombuffer(raw, array.dtype, count=array.size).reshape(array.shape, order=order)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert fuzzlib.same_array(np.load(path), want) is None
    os.unlink(path)
    check(data, "npy", expected={None: want})
