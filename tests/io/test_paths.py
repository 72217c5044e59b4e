"""Tests of libs/io/paths.py: safe output paths, natural sorting and atomic writes."""
import os

import pytest

from libs.errors import VOSError
from libs.io import atomic_path, natural_key, safe_join


def test_safe_join_accepts_plain_names(tmp_path):
    assert safe_join(str(tmp_path), "bear", "00000.png") == os.path.join(str(tmp_path), "bear", "00000.png")
    assert safe_join(str(tmp_path), "a..b") == os.path.join(str(tmp_path), "a..b")


@pytest.mark.parametrize("name", ["..", "../x", "/etc", "a/b", "a\\b", "", ".", "C:evil"])
def test_safe_join_rejects_escaping_names(tmp_path, name):
    with pytest.raises(VOSError, match="is not a plain file name"):
        safe_join(str(tmp_path), name)


def test_safe_join_rejects_symlink_out_of_root(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    os.symlink(str(outside), str(root / "link"))
    with pytest.raises(VOSError, match="escapes its folder"):
        safe_join(str(root), "link")


def test_natural_key_orders_numbers_by_value():
    names = ["f10.jpg", "f2.jpg", "F1.jpg", "f2a.jpg"]
    assert sorted(names, key=natural_key) == ["F1.jpg", "f2.jpg", "f2a.jpg", "f10.jpg"]


def test_atomic_path_replaces_only_on_success(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    with atomic_path(str(target)) as tmp:
        assert os.path.dirname(tmp) == str(tmp_path / "sub") and tmp.endswith(".txt")
        with open(tmp, "w") as handle:
            handle.write("new")
        assert not target.exists()
    assert target.read_text() == "new"
    with pytest.raises(RuntimeError):
        with atomic_path(str(target)) as tmp:
            with open(tmp, "w") as handle:
                handle.write("broken")
            raise RuntimeError("writer failed")
    assert target.read_text() == "new" and os.listdir(tmp_path / "sub") == ["out.txt"]
