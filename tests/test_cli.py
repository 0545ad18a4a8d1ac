"""The command line, run in-process through ``mmio.cli.main`` (plus process-level smoke tests: a held lock
that a signal ends, and file names a strict terminal encoding cannot print)."""

import base64
import json
import os
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET
from types import SimpleNamespace

import pytest

import mmio
from mmio._units import human_bytes
from mmio.cli import main
from conftest import fincore, sparse_file

PAGE = mmio.PAGE_SIZE


@pytest.fixture
def cli(capsys):
    """``cli(*args)`` runs ``mmio ARGS`` in this process: its status, standard output and error."""
    def run(*args):
        try:
            status = main([str(a) for a in args])
        except SystemExit as exc:  # argparse's usage errors
            status = exc.code
        out, err = capsys.readouterr()
        return SimpleNamespace(returncode=status, stdout=out, stderr=err)
    return run


def test_residency_json_matches_fincore(tmp_path, cli):
    files = [sparse_file(tmp_path / "a.bin"), sparse_file(tmp_path / "b.bin", 32, (5,))]
    proc = cli("residency", "--json", *files)
    assert proc.returncode == 0
    report = json.loads(proc.stdout)
    theirs = fincore(*files)
    for row in report["files"]:
        assert row["pages"] == int(theirs[row["file"]]["pages"])
        assert row["res"] == int(theirs[row["file"]]["res"])
        assert row["size"] == int(theirs[row["file"]]["size"])
    assert report["total"]["pages"] == sum(r["pages"] for r in report["files"])


def test_residency_table_recursion_and_failures(tmp_path, cli):
    (tmp_path / "d" / "e").mkdir(parents=True)
    for name in ("d/x", "d/e/y"):
        (tmp_path / name).write_bytes(bytes(3 * PAGE))
    flat = cli("residency", "-b", tmp_path / "d")
    assert flat.returncode == 0
    assert flat.stdout.splitlines()[0].split() == ["RES", "PAGES", "SIZE", "FILE"]
    assert len(flat.stdout.splitlines()) == 2
    deep = cli("residency", "-r", "-v", tmp_path / "d", tmp_path / "missing")
    assert deep.returncode == 1 and "missing" in deep.stderr
    lines = deep.stdout.splitlines()
    assert any(line.endswith(" total") for line in lines)
    assert any(line.endswith("/d/e/y") for line in lines) and any(line.strip(".*+") == "" for line in lines)


def test_touch_evict_maps_and_usage(tmp_path, cli):
    path = tmp_path / "f.bin"
    path.write_bytes(os.urandom(32 * PAGE))
    assert "0 pages still cached" in cli("evict", "--sync", path).stdout
    assert "32 pages cached" in cli("touch", path).stdout
    assert "32 pages cached" in cli("touch", "--method", "populate", path).stdout
    maps = cli("maps")
    assert maps.returncode == 0 and "[stack]" in maps.stdout
    child = subprocess.Popen(["sleep", "30"])
    try:
        regions = json.loads(cli("maps", "--json", child.pid).stdout)
    finally:
        child.kill()
        child.wait()
    assert any(r["path"] and r["path"].endswith("sleep") for r in regions)
    assert cli("residency").returncode == 2
    assert cli("maps", "999999999").returncode == 1


@pytest.mark.not_under_sanitizer  # ASan makes mlock/munlock/mlockall no-ops
def test_lock_holds_until_terminated(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(os.urandom(64 * PAGE))
    proc = subprocess.Popen([sys.executable, "-m", "mmio", "lock", str(path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().startswith("locked 1 files")
        status = open(f"/proc/{proc.pid}/status").read()
        locked_kb = int(status.split("VmLck:")[1].split()[0])
        assert locked_kb >= 64 * PAGE // 1024
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert "released" in out and proc.returncode == 0, err


def test_walk_survives_symlink_loops_and_deep_trees(tmp_path, cli):
    d = tmp_path / "d"
    d.mkdir()
    (d / "a").write_bytes(b"hi")
    os.symlink("loop", d / "loop")
    proc = cli("residency", "-r", d)
    assert proc.returncode == 1 and "d/a" in proc.stdout and "loop" in proc.stderr
    deep = tmp_path / "deep"
    levels = [deep]
    for _ in range(1100):  # deeper than Python's default recursion limit
        levels.append(levels[-1] / "x")
    for level in levels:
        level.mkdir()
    (levels[-1] / "f").write_bytes(b"x")
    try:
        proc = cli("residency", "-r", deep)
        assert proc.returncode == 0 and proc.stdout.rstrip().endswith("/f")
    finally:
        (levels[-1] / "f").unlink()
        for level in reversed(levels):
            level.rmdir()
    table = mmio.residency(d)
    assert any(row.error for row in table) and any(row.residency for row in table)


def test_odd_file_names_in_the_cli_and_the_html(tmp_path):
    for name in (b"bad\xff", b"ctl\x01x", b"a<b&'c"):
        (tmp_path / os.fsdecode(name)).write_bytes(b"x" * 10)
    env = dict(os.environ, PYTHONIOENCODING="utf-8:strict")
    proc = subprocess.run([sys.executable, "-m", "mmio", "residency", str(tmp_path)], capture_output=True,
                          text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.splitlines()) == 5  # header, three files, total
    page = mmio.residency(tmp_path)._repr_html_()
    ET.fromstring(page)
    page.encode("utf-8")
    r = mmio.residency(tmp_path / os.fsdecode(b"ctl\x01x"))
    from mmio.display import residency_html
    ET.fromstring(residency_html(r, label=os.fsdecode(b"ctl\x01x\xff")))


@pytest.mark.not_under_sanitizer  # ASan makes mlock/munlock/mlockall no-ops
def test_a_missing_file_fails_the_command_and_the_others_still_run(tmp_path, cli):
    first, missing, last = tmp_path / "a.bin", tmp_path / "missing.bin", tmp_path / "z.bin"
    for path in (first, last):
        path.write_bytes(os.urandom(4 * PAGE))
    for command in ("touch", "evict"):
        proc = cli(command, first, missing, last)
        assert proc.returncode == 1, (command, proc.stderr)
        assert [line.split(":")[0] for line in proc.stdout.splitlines()] == [str(first), str(last)]
        assert proc.stderr.startswith(f"mmio {command}: {missing}: ") and len(proc.stderr.splitlines()) == 1
    lock = subprocess.Popen([sys.executable, "-m", "mmio", "lock", str(first), str(missing), str(last)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert lock.stdout.readline().startswith(f"locked 2 files, {human_bytes(8 * PAGE)};")
        lock.send_signal(signal.SIGTERM)
        out, err = lock.communicate(timeout=30)
    finally:
        lock.kill()
    assert lock.returncode == 1 and out == "released\n" and err.startswith(f"mmio lock: {missing}: "), err


def test_lock_with_nothing_to_lock_exits_at_once(cli):
    proc = cli("lock", "/nonexistent/file")
    assert proc.returncode == 1 and "nonexistent" in proc.stderr


def test_bad_pid_is_bad_usage_and_huge_chunks_are_refused(tmp_path, cli):
    assert cli("maps", "abc").returncode == 2
    path = tmp_path / "f"
    path.write_bytes(b"x")
    with pytest.raises(ValueError, match="chunk"):
        mmio.touch(path, chunk=2 ** 70)


def test_a_reader_that_leaves_ends_the_output_quietly():
    # `mmio maps | head`: the pipe's reader is gone before mmio writes; no traceback, no "Broken pipe" message
    read, write = os.pipe()
    os.close(read)
    try:
        proc = subprocess.run([sys.executable, "-m", "mmio", "maps"], stdout=write, stderr=subprocess.PIPE,
                              text=True, timeout=60)
    finally:
        os.close(write)
    assert proc.returncode == 141 and proc.stderr == ""


HOSTILE_NAMES = {b"evil\nrow": "evil\\nrow", b"\x1b[31mred": "\\x1b[31mred", b"bad\xff": "bad\\xff",
                 b"back\\slash": "back\\\\slash", b"c1\xc2\x9bx": "c1\\x9bx"}


def test_file_names_cannot_forge_lines_or_reach_the_terminal(tmp_path, cli):
    folder = os.fsencode(tmp_path / "d")
    os.mkdir(folder)
    for name in HOSTILE_NAMES:
        with open(folder + b"/" + name, "wb") as f:
            f.write(b"x" * 10)
    table = cli("residency", os.fsdecode(folder))
    lines = table.stdout.splitlines()
    assert table.returncode == 0 and len(lines) == 2 + len(HOSTILE_NAMES)  # header, files, total
    assert not any(c in table.stdout for c in "\x1b\x9b\udcff")
    assert sorted(line.rsplit("/", 1)[1] for line in lines[1:-1]) == sorted(HOSTILE_NAMES.values())
    for command in ("touch", "evict"):
        out = cli(command, os.fsdecode(folder)).stdout
        assert len(out.splitlines()) == len(HOSTILE_NAMES) and "\x1b" not in out
    missing = cli("evict", os.fsdecode(folder + b"/gone\n\x1b[2J"))
    assert missing.returncode == 1 and "\x1b" not in missing.stderr and len(missing.stderr.splitlines()) == 1

    report = json.loads(cli("residency", "--json", os.fsdecode(folder)).stdout)
    for row in report["files"]:
        row["file"].encode("utf-8")  # valid Unicode: no lone surrogates
        exact = base64.b64decode(row["file_base64"]) if "file_base64" in row else row["file"].encode()
        assert exact.rsplit(b"/", 1)[1] in HOSTILE_NAMES
    assert sorted(base64.b64decode(r["file_base64"]).rsplit(b"/", 1)[1] for r in report["files"]
                  if "file_base64" in r) == [b"bad\xff"]


def test_residency_sort_and_top_keep_the_total_over_all_rows(tmp_path, cli):
    for name, pages, cached in (("a", 8, 1), ("b", 2, 2), ("c", 16, 4)):
        sparse_file(tmp_path / name, pages, range(cached))
    default = cli("residency", "-b", tmp_path).stdout.splitlines()
    assert [line.rsplit("/", 1)[1] for line in default[1:-1]] == ["a", "b", "c"]  # as walked, like fincore
    top = cli("residency", "-b", "--sort", "resident", "--top", "2", tmp_path)
    lines = top.stdout.splitlines()
    assert top.returncode == 0 and [line.rsplit("/", 1)[1] for line in lines[1:3]] == ["c", "b"]
    assert lines[3] == f"... and 1 more files ({PAGE} resident)"
    assert lines[4].split() == [str(7 * PAGE), "7", str(26 * PAGE), "total"] == default[-1].split()
    by_size = cli("residency", "--sort", "size", tmp_path).stdout.splitlines()
    assert [line.rsplit("/", 1)[1] for line in by_size[1:-1]] == ["c", "a", "b"]
    assert cli("residency", "--sort", "age", tmp_path).returncode == 2
