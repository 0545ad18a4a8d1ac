"""safetensors: files the reference writes and files written here, tampered JSON headers, flipped bytes."""

from hypothesis import given
from hypothesis import strategies as st

import fuzzlib
import fuzz_strategies as s
from fuzzlib import check, check_hostile

STEMS = st.sampled_from(fuzzlib.FILE_STEMS)


@given(s.safetensors_files(), STEMS)
def test_safetensors_valid_files_load_exactly(case, stem):
    data, expected = case
    check(data, "safetensors", stem=stem, expected=expected)


@given(s.hostile_safetensors(), STEMS)
def test_safetensors_tampered_headers(data, stem):
    check_hostile(data, "safetensors", stem=stem)


@given(s.safetensors_files().flatmap(lambda case: s.mutated(case[0], hot=len(case[0]))), STEMS)
def test_safetensors_mutated_bytes(data, stem):
    check_hostile(data, "safetensors", stem=stem)
