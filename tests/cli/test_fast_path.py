"""The Click-free fast path for send / pop-fetch / imap-sync / queue run / queue list: it
parses exactly what Click parses (a matrix of command lines through both), hands everything
else to Click, and a real run of each command imports neither Click nor rich, email or dns
(``test_fast_queue.py``: the queue commands' runs)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import pytest

from mailtool.cli.fastparse import parse
from tests.helpers import run_cli


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    cfg = tmp_path / "config.toml"
    cfg.write_text('[accounts.a.smtp]\nhost = "x"\n')
    ca = tmp_path / "ca.pem"
    ca.write_text("not really a CA")
    md = tmp_path / "Mail"
    md.mkdir()
    return {"CFG": str(cfg), "CA": str(ca), "MD": str(md), "DIR": str(tmp_path),
            "MISSING": str(tmp_path / "missing")}


def click_parse(argv: list[str]) -> tuple[str, dict[str, Any], dict[str, Any]] | None:
    """What Click makes of ``argv`` (None: a usage error, help, or no fast command)."""
    from mailtool.cli.app import cli

    try:
        ctx = cli.make_context("mailtool", list(argv), **cli.context_settings)
        rest = [*getattr(ctx, "_protected_args", []), *ctx.args]
        cmd = cli.get_command(ctx, rest[0]) if rest else None
        if cmd is None:
            return None
        sub = cmd.make_context(rest[0], rest[1:], parent=ctx)
        name, params = rest[0], dict(sub.params)
        if isinstance(cmd, click.Group):  # ``queue run``: the group, then its sub-command
            more = [*getattr(sub, "_protected_args", []), *sub.args]
            leaf_cmd = cmd.get_command(sub, more[0]) if more else None
            if leaf_cmd is None:
                return None
            leaf = leaf_cmd.make_context(more[0], more[1:], parent=sub)
            name, params = f"{name} {more[0]}", {**params, **leaf.params}
    except (click.exceptions.ClickException, click.exceptions.Exit):
        return None
    return name, dict(ctx.params), params


def canon(parsed: tuple[str, dict[str, Any], dict[str, Any]] | None) -> object:
    """Comparable form: names with the repr of each value (so 5 != 5.0 and () != [])."""
    if parsed is None:
        return None
    name, root, params = parsed
    return (name, sorted((k, repr(v)) for k, v in root.items()),
            sorted((k, repr(v)) for k, v in params.items()))


# Each line: the words, then whether the fast path must take it ("fast") or leave it to
# Click ("click"). Placeholders in capitals are files made by the fixture.
MATRIX: list[tuple[str, str]] = [
    ("send a@b.test", "fast"),
    ("-v send -f me@x.test a@b.test", "fast"),
    ("-vv --json -q --timeout 5 send a@b.test", "fast"),
    ("--timeout=0.5 --verbose -v send a@b.test", "fast"),
    ("--config CFG --account a send a@b.test", "fast"),
    ("--config=CFG send a@b.test", "fast"),
    ("send -t -i -oi -oem -FCron -f root@x.test", "fast"),
    ("send -ti -fme@x.test -F Cron\\ Daemon a@b.test", "fast"),
    ("send -f=me@x.test a@b.test", "fast"),
    ("send a@b.test --from me@x.test c@d.test -- -e@f.test", "fast"),
    ("send --to a@b.test --to=c@d.test,e@f.test --cc x@y.test --bcc z@y.test", "fast"),
    ("send --subject 'two words' --body '' --header 'X-A: 1' --header 'X-B: 2' a@b.test", "fast"),
    ("send --batch", "fast"),
    ("send --batch DIR", "fast"),
    ("send --batch --json", "fast"),
    ("send --batch=", "fast"),
    ("send --batch= -v", "fast"),
    ("send --ret FULL --notify success,failure --envid x1 a@b.test", "fast"),
    ("send --ret hdrs --no-chunking --dry-run --queue-on-tempfail a@b.test", "fast"),
    ("send --smarthost h:25 --tls none --port 25 --user u --auth PLAIN a@b.test", "fast"),
    ("send --host h --tls=implicit --insecure --allow-plaintext-auth --ca-file CA x@y.test", "fast"),
    ("send --from -h a@b.test", "fast"),
    ("send --subject --help a@b.test", "fast"),
    ("send --json -vvv -q a@b.test", "fast"),
    ("send - a@b.test", "fast"),
    ("send --dns-server 127.0.0.1:53 --bounce-to p@x.test a@b.test", "fast"),
    ("send", "fast"),
    ("-- send a@b.test", "fast"),
    ("send --ret bogus a@b.test", "click"),
    ("send --tls IMPLICIT a@b.test", "click"),
    ("send --port 0 a@b.test", "click"),
    ("send --port=x a@b.test", "click"),
    ("send --port 65536 a@b.test", "click"),
    ("send --ca-file MISSING a@b.test", "click"),
    ("send --ca-file DIR a@b.test", "click"),
    ("send --dry-run=1 a@b.test", "click"),
    ("send --bogus a@b.test", "click"),
    ("send -tx a@b.test", "click"),
    ("send -th a@b.test", "click"),
    ("send --help", "click"),
    ("send -h", "click"),
    ("send --from", "click"),
    ("send -5", "click"),
    ("--help", "click"),
    ("--version", "click"),
    ("--timeout 0 send a@b.test", "click"),
    ("--timeout x send a@b.test", "click"),
    ("--config DIR send a@b.test", "click"),
    ("--bogus send", "click"),
    ("", "click"),
    ("--json", "click"),
    ("explain 550", "click"),
    ("no-such-command", "click"),
    ("pop-fetch --maildir MD", "fast"),
    ("pop-fetch --maildir MD --delete --all --limit 3 --max-size 64k --headers-only", "fast"),
    ("pop-fetch --mbox DIR/new.mbox --delete-after 0 --max-size 1.5M", "fast"),
    ("pop-fetch --mda 'procmail -d ann' --max-size=5000 --delete-after=2.5", "fast"),
    ("pop-fetch --stdout --limit=1 --json -v", "fast"),
    ("pop-fetch --host localhost --port 995 --tls implicit --ca-file CA --user u --maildir MISSING", "fast"),
    ("-q --json pop-fetch -vv --json --maildir MD", "fast"),
    ("pop-fetch --max-size x", "click"),
    ("pop-fetch --max-size 10T", "click"),
    ("pop-fetch --limit 0", "click"),
    ("pop-fetch --delete-after -1", "click"),
    ("pop-fetch --maildir CFG", "click"),
    ("pop-fetch --mbox MD", "click"),
    ("pop-fetch extra-argument", "click"),
    ("pop-fetch --help", "click"),
    ("imap-sync --maildir MD", "fast"),
    ("imap-sync --maildir MD INBOX Sent --include 'Lists/*' --exclude Trash --exclude 'Junk*'", "fast"),
    ("imap-sync INBOX --maildir=MD --dry-run --keep-deleted --allow-mass-delete", "fast"),
    ("imap-sync --max-delete-share 1 --maildir MD", "fast"),
    ("imap-sync --max-delete-share 0.5 -- --odd-folder -x", "fast"),
    ("--account a --config CFG imap-sync --host h:993 --tls implicit --user u", "fast"),
    ("imap-sync --max-delete-share 1.5", "click"),
    ("imap-sync --max-delete-share nan-ish", "click"),
    ("imap-sync --maildir CFG", "click"),
    ("imap-sync -x", "click"),
    ("queue run", "fast"),
    ("queue list", "fast"),
    ("-q queue run -v", "fast"),
    ("--json --timeout 5 queue run --lifetime 2d 1764260000 1764260001.42 -vv", "fast"),
    ("queue run --lifetime=12h --json -- -odd-id", "fast"),
    ("--account a --config CFG queue list --json -q", "fast"),
    ("queue list --verbose --quiet", "fast"),
    ("queue -- run", "fast"),
    ("queue run --help", "click"),
    ("queue run -h", "click"),
    ("queue --help run", "click"),
    ("queue -v run", "click"),
    ("queue run --lifetime", "click"),
    ("queue run --bogus", "click"),
    ("queue list extra-argument", "click"),
    ("queue list --lifetime 2d", "click"),
    ("queue flush", "click"),
    ("queue show 1764260000", "click"),
    ("queue drop 1764260000", "click"),
    ("queue bogus", "click"),
    ("queue", "click"),
]


def _words(line: str, files: dict[str, str]) -> list[str]:
    import shlex

    words = shlex.split(line)
    out = []
    for word in words:
        for key, value in files.items():
            word = word.replace(key, value)
        out.append(word)
    return out


@pytest.mark.parametrize(("line", "path"), MATRIX, ids=[m[0] or "(empty)" for m in MATRIX])
def test_fast_parser_matches_click(line: str, path: str, files: dict[str, str],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MAILTOOL_CONFIG", raising=False)
    monkeypatch.delenv("_MAILTOOL_COMPLETE", raising=False)
    argv = _words(line, files)
    fast = parse(argv)
    slow = click_parse(argv)
    if path == "fast":
        assert fast is not None, "the fast path should take this line"
        assert slow is not None
        assert canon(fast) == canon(slow)
    else:
        assert fast is None, f"the fast path took a line Click should handle: {fast}"


def test_environment_variable_and_completion(files: dict[str, str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAILTOOL_CONFIG", files["CFG"])
    argv = ["send", "a@b.test"]
    found = parse(argv)
    assert found is not None and canon(found) == canon(click_parse(argv))
    assert str(found[1]["config_path"]) == files["CFG"]
    argv = ["--config", files["DIR"] + "/other.toml", "send"]  # the option beats the variable
    assert canon(parse(argv)) == canon(click_parse(argv))
    monkeypatch.setenv("MAILTOOL_CONFIG", files["DIR"])  # a directory: Click's error
    assert parse(["send"]) is None
    monkeypatch.setenv("MAILTOOL_CONFIG", "")  # empty: as if unset, like Click
    assert canon(parse(["send"])) == canon(click_parse(["send"]))
    monkeypatch.setenv("_MAILTOOL_COMPLETE", "bash_complete")
    assert parse(["send", "a@b.test"]) is None


def test_size_rule_lives_once() -> None:
    from mailtool.cli.commands.pop_fetch import SizeType
    from mailtool.cli.convert import parse_size

    assert parse_size("64k") == SizeType().convert("64k", None, None) == 65536
    assert parse_size(" 1.5M ") == 1572864 and parse_size("10b") == 10
    with pytest.raises(ValueError):
        parse_size("10T")
    with pytest.raises(click.exceptions.BadParameter):
        SizeType().convert("10T", None, None)


def _modules_of_run(*args: str, env: dict[str, str] | None = None, tmp: Path,
                    expect: int = 0, input: bytes | None = None) -> set[str]:
    dump = tmp / "modules.txt"
    run_cli(*args, expect=expect, input=input,
            env={**(env or {}), "MAILTOOL_DEBUG_MODULES": str(dump)})
    return set(dump.read_text().split())


def _timeless(doc: Any) -> Any:
    """A JSON document without its timings (they differ from run to run)."""
    if isinstance(doc, dict):
        return {k: _timeless(v) for k, v in doc.items() if k not in ("elapsed", "seconds")}
    if isinstance(doc, list):
        return [_timeless(v) for v in doc]
    return doc


#: What a run of a fast command must not load: Click (the point of the fast path) and the
#: slow libraries it has no use for.
HEAVY = ("click", "rich", "email", "dns", "keyring")
#: ... nor, on the runs cron repeats all day (a send, a rerun with nothing new), the
#: start-up costs the CLI and the library both avoid (TLS runs on _ssl/_socket, SASL
#: encodes with binascii).
HEAVY_RERUN = (*HEAVY, "typing", "pathlib", "json", "logging", "dataclasses", "ssl", "socket",
               "base64")


def _heavy(modules: set[str], heavy: tuple[str, ...] = HEAVY) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in heavy)


@pytest.mark.servers
@pytest.mark.timeout(120)
def test_send_runs_without_click(postfix: Any, dovecot: Any, mail_user: Any, test_ca: Any,
                                 tmp_path: Path) -> None:
    msg = f"To: {mail_user.address}\nSubject: fast path\n\nhello\n".encode()
    modules = _modules_of_run(
        "send", "--smarthost", f"{postfix.host}:{postfix.smtp_port}", "--tls", "starttls",
        "--ca-file", str(test_ca.ca_file), "-f", "cron@sender.test", "-oi",
        mail_user.address, input=msg, tmp=tmp_path)
    assert "mailtool.cli.fastparse" in modules and "mailtool.cli.run.send" in modules
    assert _heavy(modules, HEAVY_RERUN) == []
    slow = _modules_of_run(
        "send", "--smarthost", f"{postfix.host}:{postfix.smtp_port}", "--tls", "starttls",
        "--ca-file", str(test_ca.ca_file), "-f", "cron@sender.test", mail_user.address,
        input=msg, tmp=tmp_path, env={"MAILTOOL_FAST": "0"})
    assert "click" in slow  # the comparison run really took the other path
    deadline = 200
    while len(dovecot.messages(mail_user)) < 2 and deadline:
        import time

        time.sleep(0.05)  # polling the Maildir with a bound, not synchronising by sleep
        deadline -= 1
    assert len(dovecot.messages(mail_user)) == 2


@pytest.mark.servers
@pytest.mark.timeout(120)
def test_pop_fetch_keep_mode_runs_without_click(dovecot: Any, mail_user: Any, test_ca: Any,
                                                tmp_path: Path) -> None:
    dovecot.deliver_many(mail_user, [f"Subject: m{i}\n\nbody {i}\n".encode() for i in range(5)])
    md = tmp_path / "Mail"
    args = ("pop-fetch", "--host", "localhost", "--port", str(dovecot.pop3s_port), "--tls",
            "implicit", "--ca-file", str(test_ca.ca_file), "--user", mail_user.name,
            "--maildir", str(md))
    env = {"MAILTOOL_PASSWORD": mail_user.password}
    first = _modules_of_run(*args, env=env, tmp=tmp_path)
    assert _heavy(first) == []
    stored = sorted(p.name for p in (md / "new").iterdir())
    assert len(stored) == 5
    rerun = _modules_of_run(*args, env=env, tmp=tmp_path)  # keep mode: nothing new
    assert _heavy(rerun, HEAVY_RERUN) == [] and "mailtool.cli.run.pop_fetch" in rerun
    assert sorted(p.name for p in (md / "new").iterdir()) == stored
    # The Click path agrees: nothing new either, and the same JSON shape.
    slow = run_cli(*args, "--json", env={**env, "MAILTOOL_FAST": "0"})
    fast = run_cli(*args, "--json", env=env)
    assert _timeless(json.loads(slow.stdout)) == _timeless(json.loads(fast.stdout))


@pytest.mark.servers
@pytest.mark.timeout(120)
def test_imap_sync_noop_runs_without_click(dovecot: Any, mail_user: Any, test_ca: Any,
                                           tmp_path: Path) -> None:
    dovecot.deliver_many(mail_user, [f"Subject: m{i}\n\nbody {i}\n".encode() for i in range(5)])
    md = tmp_path / "Mail"
    args = ("imap-sync", "--host", f"{dovecot.host}:{dovecot.imaps_port}", "--tls",
            "implicit", "--ca-file", str(test_ca.ca_file), "--user", mail_user.name,
            "--maildir", str(md), "INBOX")
    env = {"MAILTOOL_PASSWORD": mail_user.password}
    first = _modules_of_run(*args, env=env, tmp=tmp_path)
    assert _heavy(first) == []
    noop = _modules_of_run(*args, env=env, tmp=tmp_path)
    assert _heavy(noop, HEAVY_RERUN) == [] and "mailtool.cli.run.imap_sync" in noop
    fast = _timeless(json.loads(run_cli(*args, "--json", env=env).stdout))
    slow = _timeless(json.loads(run_cli(*args, "--json", env={**env, "MAILTOOL_FAST": "0"}).stdout))
    assert fast == slow and fast["folders"][0]["fetched"] == 0


def _table_for(command: click.Command) -> list[dict[str, Any]]:
    from scripts.gen_fast_table import param_entries

    ctx = click.Context(command, info_name=command.name)
    sub = command.make_context(command.name, [], resilient_parsing=True)
    return param_entries(command, ctx, dict(sub.params))


def test_generator_leaves_what_it_cannot_reproduce_to_click() -> None:
    from scripts.gen_fast_table import Unsupported

    @click.command("cb")
    @click.option("--x", callback=lambda ctx, param, value: value)
    def with_callback(x: str | None) -> None:
        """-"""

    @click.command("pair")
    @click.option("--xy", nargs=2)
    def with_pair(xy: tuple[str, str] | None) -> None:
        """-"""

    @click.command("req")
    @click.option("--x", required=True)
    def with_required(x: str) -> None:
        """-"""

    for command in (with_callback, with_pair, with_required):
        with pytest.raises(Unsupported):
            _table_for(command)


def test_unknown_types_fall_back_only_when_used() -> None:
    import datetime

    from mailtool.cli import fastparse

    @click.command("t")
    @click.option("--when", type=click.DateTime())
    @click.option("--n", type=click.IntRange(0, 9, clamp=True))
    @click.option("--name", default="x")
    @click.argument("first")
    @click.argument("rest", nargs=-1)
    @click.argument("last")
    def typed(**kw: Any) -> None:
        """-"""

    spec = _table_for(typed)
    by_name = {p["name"]: p for p in spec}
    assert by_name["when"]["type"][0] == "unknown" and by_name["n"]["type"][0] == "unknown"
    parse_one = fastparse._parse  # the one level, as for a command

    def both(args: list[str]) -> tuple[object, object]:
        try:
            fast: object = parse_one(spec, list(args), {}, interspersed=True)[0]
        except fastparse._Fallback:
            fast = None
        try:
            slow: object = dict(typed.make_context("t", list(args)).params)
        except click.exceptions.ClickException:
            slow = "error"
        return fast, slow

    fast, slow = both(["a", "b", "c", "d", "--name", "y"])
    assert fast == slow == {"first": "a", "rest": ("b", "c"), "last": "d", "name": "y",
                            "when": None, "n": None}
    fast, slow = both(["--when", "2026-01-02", "a", "b"])
    assert fast is None and isinstance(slow, dict) and isinstance(slow["when"], datetime.datetime)
    assert both(["--n", "12", "a", "b"])[0] is None  # clamping: Click's job
    assert both(["a"]) == (None, "error")  # a required argument missing


_EXIT_PROBE = """
import atexit, sys
marks = sys.argv[1]
class Teardown:
    def __del__(self, _open=open, _path=marks + ".teardown"):
        _open(_path, "w").close()  # runs only if the interpreter tears its modules down
keep = Teardown()
atexit.register(lambda: open(marks + ".atexit", "w").close())
sys.argv = ["mailtool", *sys.argv[2:]]
from mailtool.cli.main import main
main()
"""


@pytest.mark.timeout(60)
@pytest.mark.parametrize("fast", [True, False], ids=["fast-path", "click"])
def test_a_fast_path_run_skips_the_teardown_but_not_atexit(tmp_path: Path, fast: bool) -> None:
    import os
    import subprocess
    import sys

    marks = tmp_path / "marks"
    env = dict(os.environ, XDG_STATE_HOME=str(tmp_path / "state"),
               MAILTOOL_FAST="1" if fast else "0")
    proc = subprocess.run([sys.executable, "-c", _EXIT_PROBE, str(marks), "queue", "list",
                           "--json"], capture_output=True, text=True, env=env, timeout=60,
                          cwd=Path(__file__).resolve().parents[2])
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == []  # the output was flushed before the exit
    assert (tmp_path / "marks.atexit").exists()
    assert (tmp_path / "marks.teardown").exists() is not fast
