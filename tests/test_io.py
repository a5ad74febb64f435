"""Atomic outputs: a folder is replaced only when edgeseg wrote it, in one step; others survive."""

import pytest

from edgeseg.errors import EdgesegError
from edgeseg.io import _exchange, atomic_path, write_text


def _is_ours(folder):
    return (folder / "ours.txt").is_file()


def _write_folder(path, text):
    with atomic_path(path, _is_ours, "test output") as tmp:
        tmp.mkdir()
        (tmp / "ours.txt").write_text(text)


def test_own_folder_is_replaced_and_foreign_folder_survives(tmp_path):
    out = tmp_path / "out"
    _write_folder(out, "one")
    _write_folder(out, "two")
    assert (out / "ours.txt").read_text() == "two" and sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "mine.txt").write_text("precious")
    with pytest.raises(EdgesegError, match="not empty and is not a test output"):
        _write_folder(notes, "x")
    assert [p.name for p in notes.iterdir()] == ["mine.txt"] and (notes / "mine.txt").read_text() == "precious"


def test_failure_keeps_the_previous_content(tmp_path):
    out = tmp_path / "out"
    _write_folder(out, "one")
    with pytest.raises(RuntimeError):
        with atomic_path(out, _is_ours) as tmp:
            tmp.mkdir()
            raise RuntimeError("converter crashed")
    assert (out / "ours.txt").read_text() == "one" and sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_swap_is_one_step_on_this_system(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    (a / "x").write_text("a"), (b / "x").write_text("b")
    assert _exchange(a, b)  # Linux: renameat2(RENAME_EXCHANGE), no moment without either folder
    assert (a / "x").read_text() == "b" and (b / "x").read_text() == "a"


def test_bad_output_paths_are_one_line(tmp_path):
    file = tmp_path / "file.txt"
    file.write_text("keep")
    with pytest.raises(EdgesegError, match="is not a folder; cannot write inside it"):
        write_text(file / "x.json", "{}")
    with pytest.raises(EdgesegError, match="exists and is not a folder"):
        _write_folder(file, "x")
    with pytest.raises(EdgesegError, match="is a folder; expected a file name"):
        write_text(tmp_path, "{}")
    assert file.read_text() == "keep"
