"""``queue run`` / ``queue list`` on the Click-free fast path: a group's sub-command in the
table and the parser, the empty-queue run cron repeats all day (no Click, no delivery
stack), a real delivery of a queued message, and the fall-backs to Click."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import pytest

from tests.cli.test_fast_path import HEAVY_RERUN, _heavy, _modules_of_run, canon, click_parse
from tests.helpers import run_cli
from tests.outbox.conftest import T0
from tests.outbox.smtpd import CountingSMTP

pytestmark = pytest.mark.timeout(90)

#: What an empty-queue run must not load besides ``HEAVY_RERUN``: the delivery stack.
DELIVERY = ("mailtool.delivery", "mailtool.sendcore", "mailtool.compose", "mailtool.mx",
            "mailtool.protocol.transport", "mailtool.protocol.smtp", "ssl", "socket")

CRON = (b"From: root (Cron Daemon)\nTo: root\nSubject: Cron <root@box> backup\n"
        b"Content-Type: text/plain\n\nbackup done\n")


def test_empty_queue_run_loads_neither_click_nor_the_delivery_stack(tmp_path: Path) -> None:
    runs: list[tuple[str, ...]] = [("queue", "run"), ("-q", "queue", "run", "-v"),
                                   ("queue", "list")]
    for args in runs:
        modules = _modules_of_run(*args, tmp=tmp_path)
        assert "mailtool.cli.run.queue" in modules, args
        assert _heavy(modules, HEAVY_RERUN) == [], args
        assert sorted(m for m in modules if m in DELIVERY) == [], args
    assert run_cli("queue", "run").stdout == ""
    assert run_cli("queue", "list").stdout == "outbox is empty\n"
    assert run_cli("queue", "list", "-q").stdout == ""
    # --json: the same document on both paths.
    for args in [("queue", "run", "--json"), ("queue", "list", "--json")]:
        fast = json.loads(run_cli(*args).stdout)
        slow = json.loads(run_cli(*args, env={"MAILTOOL_FAST": "0"}).stdout)
        assert fast == slow, args
    assert json.loads(run_cli("queue", "run", "--json").stdout) == {
        "locked_out": False, "entries": [], "exit_code": 0}


def test_fall_backs_run_click(tmp_path: Path) -> None:
    modules = _modules_of_run("queue", "run", "--help", tmp=tmp_path)
    assert "click" in modules
    assert "Retry the queued messages that are due" in run_cli("queue", "run", "--help").stdout
    assert "click" in _modules_of_run("queue", "flush", tmp=tmp_path)
    r = run_cli("queue", "run", "--bogus", expect=64)
    assert "No such option" in r.stderr
    r = run_cli("queue", "show", "1764260000", expect=64)
    assert "no queued message" in r.stderr


def test_queued_message_delivered_through_the_fast_path(tmp_path: Path) -> None:
    with CountingSMTP() as srv:
        srv.tempfail = {"b@dst.test"}
        env = {"MAILTOOL_SMARTHOST": f"127.0.0.1:{srv.port}", "MAILTOOL_TLS": "none",
               "MAILTOOL_NOW": str(T0)}
        run_cli("-f", "me@src.test", "a@dst.test", "b@dst.test", input=CRON, env=env,
                program="mailtool-sendmail")
        assert dict(srv.received) == {"a@dst.test": 1}
        # Both paths list the same entry.
        fast = json.loads(run_cli("queue", "list", "--json").stdout)
        slow = json.loads(run_cli("queue", "list", "--json", env={"MAILTOOL_FAST": "0"}).stdout)
        assert fast == slow and [r["recipients"] for r in fast] == [["b@dst.test"]]
        assert fast[0]["id"] in run_cli("queue", "list").stdout  # the rich table

        srv.tempfail.clear()
        modules = _modules_of_run("queue", "run", "-v", env={"MAILTOOL_NOW": str(T0 + 300)},
                                  tmp=tmp_path)
        assert "click" not in modules and "mailtool.cli.run.queue" in modules
        assert "mailtool.delivery" in modules  # something was due: the stack came in
        assert dict(srv.received) == {"a@dst.test": 1, "b@dst.test": 1}
        assert json.loads(run_cli("queue", "list", "--json").stdout) == []
    srv.check()


def test_deferred_again_is_quiet_and_verbose_says_so() -> None:
    with CountingSMTP() as srv:
        srv.all_tempfail = True
        env = {"MAILTOOL_SMARTHOST": f"127.0.0.1:{srv.port}", "MAILTOOL_TLS": "none",
               "MAILTOOL_NOW": str(T0)}
        run_cli("-f", "me@src.test", "a@dst.test", input=CRON, env=env,
                program="mailtool-sendmail")
        r = run_cli("queue", "run", env={"MAILTOOL_NOW": str(T0 + 60)})
        assert r.stdout == r.stderr == ""  # not due yet, nothing said
        r = run_cli("queue", "run", "-v", env={"MAILTOOL_NOW": str(T0 + 60)})
        assert ": not due (in 4m)" in r.stderr
        r = run_cli("queue", "run", env={"MAILTOOL_NOW": str(T0 + 300)})
        assert r.stdout == r.stderr == ""  # deferred again: exit 0, quiet for cron
        # Past the lifetime at the next attempt: given up, said on stderr, exit 69.
        r = run_cli("queue", "run", "--lifetime", "10m", env={"MAILTOOL_NOW": str(T0 + 900)},
                    expect=69)
        assert "<a@dst.test>: expired" in r.stderr
        assert json.loads(run_cli("queue", "list", "--json").stdout) == []
    srv.check()


def _group_table(group: click.Group, names: list[str]) -> dict[str, list[dict[str, Any]]]:
    from scripts.gen_fast_table import command_entries

    root = click.Group("mailtool", commands=[group])
    root_ctx = root.make_context("mailtool", [group.name or ""], resilient_parsing=True)
    return {name: command_entries(root_ctx, name) for name in names}


def test_group_options_go_between_the_two_words(monkeypatch: pytest.MonkeyPatch) -> None:
    from mailtool.cli import fast_table, fastparse

    @click.group("g")
    @click.option("--spool", default="s")
    @click.option("-n", "count", count=True)
    def group(spool: str, count: int) -> None:
        """-"""

    @group.command("go")
    @click.option("--fast", is_flag=True)
    @click.argument("items", nargs=-1)
    def go(fast: bool, items: tuple[str, ...]) -> None:
        """-"""

    table = _group_table(group, ["g go"])
    assert [p["name"] for p in table["g go"] if p.get("group")] == ["spool", "count"]
    monkeypatch.setattr(fast_table, "ROOT", [])
    monkeypatch.setattr(fast_table, "COMMANDS", table)

    def slow(argv: list[str]) -> object:
        try:
            gctx = group.make_context("g", list(argv))
            more = [*getattr(gctx, "_protected_args", []), *gctx.args]
            leaf = go.make_context(more[0], more[1:], parent=gctx)
        except click.exceptions.ClickException:
            return None
        return canon((f"g {more[0]}", {}, {**gctx.params, **leaf.params}))

    for line in (["go"], ["--spool", "x", "-nn", "go", "a", "--fast", "b"],
                 ["--spool=y", "go", "--", "--fast"]):
        assert canon(fastparse.parse(["g", *line])) == slow(line) is not None, line
    for line in (["go", "--spool", "x"], ["--fast", "go"], ["--spool"], ["-n"], ["other"]):
        assert fastparse.parse(["g", *line]) is None, line


def test_generator_keeps_unreproducible_groups_on_click() -> None:
    from scripts.gen_fast_table import Unsupported

    @click.group("c", chain=True)
    def chained() -> None:
        """-"""

    @chained.command("a")
    def a() -> None:
        """-"""

    @click.group("p", context_settings={"allow_interspersed_args": True})
    def odd() -> None:
        """-"""

    @odd.command("a")
    def b() -> None:
        """-"""

    @click.group("k")
    @click.option("--x", callback=lambda ctx, param, value: value)
    def with_callback(x: str | None) -> None:
        """-"""

    @with_callback.command("a")
    def c() -> None:
        """-"""

    @click.group("w")
    @click.pass_context
    def working(ctx: click.Context) -> None:
        """-"""
        ctx.obj = "set up"  # the fast path would skip this

    @working.command("a")
    def d() -> None:
        """-"""

    for group in (chained, odd, with_callback, working):
        with pytest.raises(Unsupported):
            _group_table(group, [f"{group.name} a"])


def test_table_has_the_queue_commands() -> None:
    from mailtool.cli.fast_table import COMMANDS

    assert "queue run" in COMMANDS and "queue list" in COMMANDS
    assert not any(k.startswith(("queue flush", "queue show", "queue drop")) for k in COMMANDS)
    assert canon(click_parse(["queue", "run"])) is not None
