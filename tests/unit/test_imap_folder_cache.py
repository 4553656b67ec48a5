"""The folder-name cache: what completion reads, rewritten only when the folders change."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mailtool.folder_cache import folder_cache_path, write_folder_cache


def test_unchanged_folders_leave_the_file_alone(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    folders = [{"name": "INBOX", "delimiter": "/"},
               {"name": "Entwürfe", "delimiter": "/", "special_use": "\\Drafts"}]
    path = write_folder_cache("work", folders)
    assert path == folder_cache_path("work") and path is not None
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert doc["folders"] == folders
    os.utime(path, ns=(1, 1))  # so any rewrite shows
    assert write_folder_cache("work", list(reversed(folders))[::-1]) == path
    assert path.stat().st_mtime_ns == 1

    write_folder_cache("work", [*folders, {"name": "Lists/py", "delimiter": "/"}])
    assert path.stat().st_mtime_ns != 1
    assert [f["name"] for f in json.loads(path.read_text())["folders"]][-1] == "Lists/py"


def test_names_that_need_escaping_round_trip(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    folders = [{"name": 'say "hi"\\now', "delimiter": None}, {"name": "tab\there"}]
    path = write_folder_cache("odd", folders)
    assert path is not None and json.loads(path.read_text())["folders"] == folders
    os.utime(path, ns=(1, 1))
    write_folder_cache("odd", folders)  # a tab: compared only through json, so rewritten
    assert json.loads(path.read_text())["folders"] == folders
    assert write_folder_cache(None, folders) is None


def test_hand_built_json_is_json() -> None:
    """The comparison text is byte for byte what write_json writes, or None."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from mailtool.folder_cache import _folders_text

    folder = st.fixed_dictionaries({"name": st.text(max_size=12)},
                                   optional={"delimiter": st.sampled_from(["/", ".", None]),
                                             "special_use": st.sampled_from(["\\Sent", None])})

    @given(st.lists(folder, max_size=4))
    @settings(max_examples=200, deadline=None)
    def check(items: list[dict[str, object]]) -> None:
        text = _folders_text(items)
        if text is not None:
            expected = json.dumps({"folders": items}, sort_keys=True, separators=(",", ":"),
                                  ensure_ascii=False)
            assert "{" + text + "}" == expected

    check()
