""".npz: archives numpy and zipfile write (stored, compressed, ZIP64, odd names), forged directories, flipped bytes."""

from hypothesis import given
from hypothesis import strategies as st

import fuzzlib
import fuzz_strategies as s
from fuzzlib import check, check_hostile

STEMS = st.sampled_from(fuzzlib.FILE_STEMS)


@given(s.npz_files(), STEMS)
def test_npz_written_by_numpy_and_zipfile_loads_exactly(case, stem):
    data, expected = case
    check(data, "npz", stem=stem, expected=expected)


@given(s.hostile_npz(), STEMS)
def test_npz_forged_directories(data, stem):
    check_hostile(data, "npz", stem=stem)


@given(s.npz_files().flatmap(lambda case: s.mutated(case[0], hot=len(case[0]))), STEMS)
def test_npz_mutated_bytes(data, stem):
    check_hostile(data, "npz", stem=stem)
