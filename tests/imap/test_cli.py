"""imap-list and imap-show end to end: the real CLI process against the harness's Dovecot."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mailtool.imap_view import TransferDecoder, imap_date, part_filename, safe_filename
from mailtool.protocol.imap.parser import parse_line
from mailtool.protocol.imap.types import FetchData, Untagged
from tests.helpers import Result, run_cli
from tests.imap.conftest import message, open_client
from tests.servers.ca import TestCA
from tests.servers.dovecot import Dovecot, User

pytestmark = pytest.mark.timeout(90)


def _config(tmp_path: Path, dovecot: Dovecot, test_ca: TestCA, user: User) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        f'[accounts.test.imap]\nhost = "localhost"\nport = {dovecot.imaps_port}\n'
        f'tls = "implicit"\nuser = "{user.name}"\nca_file = "{test_ca.ca_file}"\n'
    )
    os.chmod(path, 0o600)
    return path


def _run(cfg: Path, user: User, *args: str, expect: int = 0) -> Result:
    return run_cli("--config", str(cfg), "--account", "test", *args, expect=expect,
                   env={"MAILTOOL_PASSWORD": user.password})


MULTIPART = (
    b"From: =?utf-8?q?J=C3=BCrgen?= <jurgen@example.test>\r\nTo: bob@example.test\r\n"
    b"Subject: =?utf-8?b?R3LDvMOfZQ==?= with files\r\nDate: Tue, 2 Jan 2024 09:00:00 +0000\r\n"
    b"Message-ID: <mp@example.test>\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
    b"--b1\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: "
    b"quoted-printable\r\n\r\nHall=C3=B6chen, see attached.\r\n"
    b"--b1\r\nContent-Type: application/octet-stream; name=\"x.bin\"\r\n"
    b'Content-Disposition: attachment; filename="../../etc/evil\x01.bin"\r\n'
    b"Content-Transfer-Encoding: base64\r\n\r\nAAECAwQFBgcICQ==\r\n"
    b"--b1--\r\n"
)


def test_imap_list_folders_tree_counts_and_cache(tmp_path: Path, dovecot: Dovecot,
                                                 test_ca: TestCA, mail_user: User,
                                                 isolated_env: Path) -> None:
    client = open_client(dovecot, test_ca, mail_user)
    try:
        for name in ("Archive", "Archive/2023", "Entwürfe"):
            client.simple("CREATE", client.mailbox_arg(name))
        client.append("INBOX", message(1))
        client.append("INBOX", message(2), flags=["\\Seen"])
        client.append("Archive/2023", message(3))
    finally:
        client.logout()
    cfg = _config(tmp_path, dovecot, test_ca, mail_user)
    data = json.loads(_run(cfg, mail_user, "imap-list", "--json").stdout)
    rows = {r["name"]: r for r in data["folders"]}
    assert data["folders"][0]["name"] == "INBOX"
    assert (rows["INBOX"]["messages"], rows["INBOX"]["unseen"]) == (2, 1)
    assert rows["Archive/2023"]["messages"] == 1 and rows["Archive/2023"]["depth"] == 1
    assert "Entwürfe" in rows
    text = _run(cfg, mail_user, "imap-list").stdout
    assert "  2023" in text and "Entwürfe" in text
    cache = json.loads((isolated_env / "cache" / "mailtool" / "folders" / "test.json").read_text())
    assert {"INBOX", "Archive/2023", "Entwürfe"} <= {f["name"] for f in cache["folders"]}


def test_imap_list_messages_filters_and_json(tmp_path: Path, dovecot: Dovecot, test_ca: TestCA,
                                             mail_user: User) -> None:
    msgs = [message(i, subject=f"note {i}", sender="carol@example.test" if i % 2 else
                    "dave@example.test") for i in range(1, 8)]
    msgs.append(MULTIPART)
    dovecot.deliver_many(mail_user, msgs)
    cfg = _config(tmp_path, dovecot, test_ca, mail_user)
    data = json.loads(_run(cfg, mail_user, "imap-list", "INBOX", "--limit", "3", "--json").stdout)
    assert [m["uid"] for m in data["messages"]] == [8, 7, 6] and data["matched"] == 8
    top = data["messages"][0]
    assert top["subject"] == "Grüße with files" and top["from"] == "Jürgen"
    assert top["flags"] == []
    carol = json.loads(_run(cfg, mail_user, "imap-list", "INBOX", "--from", "carol",
                            "--json").stdout)
    assert [m["uid"] for m in carol["messages"]] == [7, 5, 3, 1]
    raw = json.loads(_run(cfg, mail_user, "imap-list", "INBOX", "--search",
                          'SUBJECT "note 2"', "--json").stdout)
    assert [m["uid"] for m in raw["messages"]] == [2]
    human = _run(cfg, mail_user, "imap-list", "INBOX", "--limit", "2")
    assert "Grüße with files" in human.stdout and "2 of 8 shown" in human.stderr
    _run(cfg, mail_user, "imap-list", "INBOX", "--since", "yesterday", expect=64)
    _run(cfg, mail_user, "imap-list", "No/Such", expect=69)


def test_imap_show_views_never_set_seen(tmp_path: Path, dovecot: Dovecot, test_ca: TestCA,
                                        mail_user: User) -> None:
    dovecot.deliver_many(mail_user, [message(1), MULTIPART])
    cfg = _config(tmp_path, dovecot, test_ca, mail_user)
    raw = _run(cfg, mail_user, "imap-show", "2", "--raw")
    assert raw.stdout_bytes == MULTIPART
    view = _run(cfg, mail_user, "imap-show", "2").stdout
    assert "Subject: Grüße with files" in view and "Hallöchen, see attached." in view
    assert "\\x01" in view and "application/octet-stream" in view  # escaped, not raw
    headers = _run(cfg, mail_user, "imap-show", "2", "--headers-only").stdout_bytes
    assert headers.startswith(b"From: ") and headers.endswith(b"\r\n\r\n")
    part = _run(cfg, mail_user, "imap-show", "2", "--part", "2").stdout_bytes
    assert part == bytes(range(10))
    out = tmp_path / "att"
    _run(cfg, mail_user, "imap-show", "2", "--save-attachments", str(out))
    _run(cfg, mail_user, "imap-show", "2", "--save-attachments", str(out))
    saved = sorted(p.name for p in out.iterdir())
    assert saved == ["evil_.bin", "evil_ (1).bin"] or saved == sorted(["evil_.bin",
                                                                       "evil_ (1).bin"])
    assert (out / "evil_.bin").read_bytes() == bytes(range(10))
    assert not (tmp_path / "etc").exists()
    flags = json.loads(_run(cfg, mail_user, "imap-list", "INBOX", "--json").stdout)
    assert all(m["flags"] == [] for m in flags["messages"])
    _run(cfg, mail_user, "imap-show", "1", "--mark-seen")
    flags = json.loads(_run(cfg, mail_user, "imap-list", "INBOX", "--json").stdout)
    assert {m["uid"]: m["flags"] for m in flags["messages"]} == {1: ["\\Seen"], 2: []}
    _run(cfg, mail_user, "imap-show", "99", expect=69)


def test_imap_list_limit_fetches_only_rows_shown(dovecot: Dovecot, test_ca: TestCA,
                                                 mail_user: User) -> None:
    """One SEARCH, then one FETCH naming just the 50 UIDs shown (read from the transcript)."""
    from mailtool.imap_view import list_messages, search_criteria
    from mailtool.protocol.transcript import Transcript

    dovecot.deliver_many(mail_user, [message(i) for i in range(1, 301)])
    transcript = Transcript()
    client = open_client(dovecot, test_ca, mail_user, transcript=transcript)
    start = len(transcript.entries)
    try:
        listing = list_messages(client, "INBOX", search_criteria(), 50)
    finally:
        client.logout()
    assert [r.uid for r in listing.rows] == list(range(300, 250, -1))
    sent = [e.data for e in transcript.entries[start:] if e.direction == "C"]
    searches = [s for s in sent if b" UID SEARCH " in s]
    fetches = [s for s in sent if b" UID FETCH " in s]
    assert len(searches) == 1 and len(fetches) == 1
    uid_set = fetches[0].split(b" UID FETCH ")[1].split(b" ")[0]
    assert uid_set == b"251:300"
    fetched = [e.data for e in transcript.entries if e.direction == "S" and b" FETCH (" in e.data]
    assert len(fetched) == 50


def test_helpers() -> None:
    assert imap_date("2024-01-05") == "5-Jan-2024" and imap_date("5-jan-2024") == "5-Jan-2024"
    assert safe_filename("../../etc/passwd", "2") == "passwd"
    assert safe_filename("..", "3") == "part-3.bin"
    assert safe_filename("C:\\x\\CON.txt", "4") == "part-4.bin"
    assert safe_filename(".bashrc", "5") == "bashrc"
    assert safe_filename("a\x00b\nc.txt", "6") == "a_b_c.txt"
    assert len(safe_filename("x" * 500 + ".pdf", "7")) <= 200
    assert safe_filename(None, "1.2", "text/plain") == "part-1.2.txt"
    dec = TransferDecoder("base64")
    data = b"".join(dec.feed(bytes([c])) for c in b"aGVs\r\nbG8gd29y\r\nbGQ=") + dec.finish()
    assert data == b"hello world"
    dec = TransferDecoder("quoted-printable")
    assert dec.feed(b"a=3D=\r\nb\r\nc=") + dec.feed(b"C3=A4") + dec.finish() == b"a=b\r\nc\xc3\xa4"
    r = parse_line(b'* 1 FETCH (BODYSTRUCTURE ("APPLICATION" "PDF" NIL NIL NIL "BASE64" 10 NIL '
                   b"(\"ATTACHMENT\" (\"FILENAME*\" \"utf-8''%C3%A4.pdf\")) NIL NIL))")
    assert isinstance(r, Untagged) and isinstance(r.value, FetchData)
    bs = r.value.bodystructure
    assert bs is not None and part_filename(bs) == "ä.pdf"
