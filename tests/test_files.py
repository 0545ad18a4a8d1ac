"""Opening files: one regular-file check and one wording for every entry point."""

import errno

import pytest

import mmio

ENTRY_POINTS = {
    "map": mmio.open,
    "load": mmio.load,
    "read the page-cache figures of": mmio.cache_stat,
    "touch": mmio.touch,
    "evict": mmio.evict,
}


@pytest.mark.parametrize("verb", ENTRY_POINTS)
def test_a_missing_file_reads_the_same_everywhere(verb, tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        ENTRY_POINTS[verb](tmp_path / "missing")
    assert str(info.value) == (f"[Errno 2] could not open the file for reading: No such file or directory: "
                               f"'{tmp_path / 'missing'}'")


@pytest.mark.parametrize("verb", ENTRY_POINTS)
def test_a_directory_is_refused_the_same_everywhere(verb, tmp_path):
    with pytest.raises(IsADirectoryError) as info:
        ENTRY_POINTS[verb](tmp_path)
    assert info.value.errno == errno.EISDIR and info.value.filename == str(tmp_path)
    assert str(info.value).startswith(f"[Errno 21] cannot {verb} a directory")


@pytest.mark.parametrize("verb", [v for v in ENTRY_POINTS if v != "map"])
def test_devices_are_refused_by_everything_but_open(verb):
    with pytest.raises(OSError) as info:
        ENTRY_POINTS[verb]("/dev/null")
    assert info.value.errno == errno.ENODEV and info.value.filename == "/dev/null"
    assert f"cannot {verb} this file: it is not a regular file" in str(info.value)


def test_open_maps_a_character_device_only_with_a_length():
    with pytest.raises(ValueError, match="a character device has no size: pass length="):
        mmio.open("/dev/zero")
    with mmio.open("/dev/zero", length=4096) as m:
        assert m[0:4] == bytes(4)
