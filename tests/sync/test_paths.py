"""Folder name -> local path mapping: layout, reversibility, hostile names."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailtool.errors import CantCreateError, DataError
from mailtool.sync.paths import NAME_MAX, folder_dirname, folder_name, folder_path


@pytest.mark.parametrize(
    ("name", "delim", "expected"),
    [
        ("INBOX", "/", ""),
        ("inbox", "/", ""),
        ("Sent", "/", ".Sent"),
        ("Lists/python", "/", ".Lists.python"),
        ("INBOX/Sub", "/", ".INBOX.Sub"),
        ("inbox/Sub", "/", ".INBOX.Sub"),
        ("Entwürfe", "/", ".Entwürfe"),
        ("日本語/メール", "/", ".日本語.メール"),
        ("a.b", "/", ".a%2Eb"),
        ("a.b", ".", ".a.b"),
        ("a/b", ".", ".a%2Fb"),
        ("a/b", None, ".a%2Fb"),
        ("100%", "/", ".100%25"),
        ("../x", "/", ".%2E%2E.x"),
        ("a/../../b", "/", ".a.%2E%2E.%2E%2E.b"),
        ("..", "/", ".%2E%2E"),
        (".", "/", ".%2E"),
        ("/", "/", ".%.%"),
        ("/etc/passwd", "/", ".%.etc.passwd"),
        (".hidden", "/", ".%2Ehidden"),
        ("nul\0byte", "/", ".nul%00byte"),
        ("tab\there", "/", ".tab%09here"),
        ("c:\\x", "/", ".c%3A%5Cx"),
        ("~x", "/", ".%7Ex"),
    ],
)
def test_dirname(name: str, delim: str | None, expected: str) -> None:
    assert folder_dirname(name, delim) == expected
    if expected:
        assert folder_name(expected, delim) == ("INBOX" + name[5:] if name.lower().startswith(
            "inbox") else name)


def test_empty_name_refused() -> None:
    with pytest.raises(DataError):
        folder_dirname("", "/")


def test_overlong_names_are_shortened_and_distinct() -> None:
    a = folder_dirname("x" * 300 + "a", "/")
    b = folder_dirname("x" * 300 + "b", "/")
    assert a != b
    assert len(a.encode()) <= NAME_MAX and len(b.encode()) <= NAME_MAX
    wide = folder_dirname("ü" * 200, "/")  # 400 bytes in UTF-8: cut on a character boundary
    assert len(wide.encode()) <= NAME_MAX
    wide.encode("utf-8")
    assert folder_name(a, "/") is None


@given(st.text(min_size=1, max_size=80), st.sampled_from(["/", ".", None]))
def test_any_name_stays_inside_root(name: str, delim: str | None) -> None:
    dirname = folder_dirname(name, delim)
    if dirname == "":
        assert name.upper() == "INBOX"
        return
    assert dirname.startswith(".") and dirname not in (".", "..")
    assert "/" not in dirname and "\0" not in dirname
    assert len(dirname.encode("utf-8", "surrogatepass")) <= NAME_MAX
    root = Path("/srv/mail")
    assert os.path.normpath(root / dirname).startswith("/srv/mail/")


@given(st.lists(st.text(min_size=1, max_size=20), min_size=2, max_size=2, unique=True))
def test_mapping_is_injective(names: list[str]) -> None:
    a, b = names
    if a.upper() == "INBOX" and b.upper() == "INBOX":
        return
    assert folder_dirname(a, "/") != folder_dirname(b, "/")


def test_symlink_in_place_of_folder_refused(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", tmp_path / "root.Sent")
    root = tmp_path / "root"
    root.mkdir()
    os.symlink(tmp_path / "elsewhere", root / ".Sent")
    with pytest.raises(CantCreateError):
        folder_path(root, "Sent", "/")
    assert folder_path(root, "INBOX", "/") == root
