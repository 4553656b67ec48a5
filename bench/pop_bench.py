"""pop-fetch against fetchmail and getmail6 (both from Debian) on the harness's Dovecot.

Workloads, each timed as whole processes, medians of ``RUNS`` runs, ratios against the
peers measured in the same run:

1. fetch + delete: ``MESSAGES`` messages of mixed sizes (POP3S) into an empty Maildir.
   mailtool fsyncs every message before its DELE; fetchmail delivers through an MDA
   (``cat`` into the Maildir's new/, as fetchmail has no Maildir writer of its own;
   certificate checks off: fetchmail cannot verify the test certificate, which has no CN);
   getmail6 writes its Maildir itself.
2. keep-mode rerun with nothing new (the cron case): the same mailbox, already fetched.
3. one ``BIG_MB`` MB message, fetch + delete: wall time and peak RSS.

Needs root like the tests (Dovecot drops to its own accounts). Install the peers with
``apt-get install -y fetchmail getmail6``. Run: ``.venv/bin/python bench/run.py pop``.
"""

from __future__ import annotations

import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import Sample, measure, report, time_command, tool

MESSAGES = int(os.environ.get("MAILTOOL_BENCH_MESSAGES", "2000"))
BIG_MB = int(os.environ.get("MAILTOOL_BENCH_BIG_MB", "100"))
RUNS = int(os.environ.get("MAILTOOL_BENCH_RUNS", "3"))


def _messages(count: int, seed: int = 2000) -> list[bytes]:
    rng = random.Random(seed)
    out = []
    for n in range(count):
        size = int(rng.lognormvariate(8, 1))  # median ~3 kB, a tail of bigger ones
        body = (b"benchmark text line with some words in it\n" * (size // 43 + 1))[:size]
        out.append(
            f"From: s{n}@example.test\nTo: bench@mail.test\nSubject: bench {n}\n"
            f"Message-ID: <pop{n}@example.test>\n\n".encode() + body + b"\n.\n..x\n"
        )
    return out


def _big(mb: int) -> bytes:
    line = b"0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuv\n"
    return b"Subject: big\n\n" + line * (mb * 1024 * 1024 // len(line))


class Peers:
    """Command lines for each tool, given a user, a destination and a mode."""

    def __init__(self, dovecot: object, ca_file: str, work: Path) -> None:
        self.dovecot = dovecot
        self.ca = ca_file
        self.work = work
        self.port = dovecot.pop3s_port  # type: ignore[attr-defined]

    def mailtool(self, user: object, dest: Path, *, delete: bool) -> tuple[list[str], dict[str, str]]:
        argv = [tool("mailtool") or "mailtool", "pop-fetch", "--host", "localhost",
                "--port", str(self.port), "--tls", "implicit", "--ca-file", self.ca,
                "--user", user.name, "--maildir", str(dest)]  # type: ignore[attr-defined]
        if delete:
            argv.append("--delete")
        env = {"MAILTOOL_PASSWORD": user.password,  # type: ignore[attr-defined]
               "XDG_STATE_HOME": str(self.work / "state")}
        return argv, env

    def fetchmail(self, user: object, dest: Path, *, delete: bool) -> tuple[list[str], dict[str, str]]:
        home = self.work / f"fm-{user.name}"  # type: ignore[attr-defined]
        home.mkdir(exist_ok=True)
        rc = home / "fetchmailrc"
        keep = "fetchall nokeep" if delete else "keep"
        rc.write_text(
            f"set no syslog\nset postmaster root\n"
            f"poll localhost service {self.port} protocol pop3 uidl\n"
            f"  user '{user.name}' there with password '{user.password}' is root here\n"  # type: ignore[attr-defined]
            f"  ssl no sslcertck {keep}\n"
            f"  mda \"/bin/sh -c 'cat > $(mktemp -p {dest}/new)'\"\n"
        )
        rc.chmod(0o600)
        argv = ["fetchmail", "-f", str(rc), "--idfile", str(home / "fetchids"), "--silent",
                "--nodetach", "--norewrite"]
        return argv, {"HOME": str(home), "FETCHMAILHOME": str(home)}

    def getmail(self, user: object, dest: Path, *, delete: bool) -> tuple[list[str], dict[str, str]]:
        home = self.work / f"gm-{user.name}"  # type: ignore[attr-defined]
        home.mkdir(exist_ok=True)
        rc = home / "getmailrc"
        rc.write_text(
            "[retriever]\ntype = SimplePOP3SSLRetriever\nserver = localhost\n"
            f"port = {self.port}\nusername = {user.name}\npassword = {user.password}\n"  # type: ignore[attr-defined]
            f"ca_certs = {self.ca}\n"
            f"[destination]\ntype = Maildir\npath = {dest}/\n"
            f"[options]\nread_all = {'true' if delete else 'false'}\n"
            f"delete = {'true' if delete else 'false'}\nverbose = 0\n"
        )
        # getmail refuses to deliver as root: run it as the unprivileged "mail" account.
        import pwd

        pw = pwd.getpwnam("mail")
        for path in (home, rc, dest, *(dest / s for s in ("cur", "new", "tmp"))):
            os.chown(path, pw.pw_uid, pw.pw_gid)
        return ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--clear-groups",
                "getmail", "--rcfile", str(rc), "--getmaildir", str(home)], {"HOME": str(home)}


def _maildir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    for sub in ("cur", "new", "tmp"):
        (path / sub).mkdir(parents=True)


def _run(argv: list[str], env: dict[str, str]) -> tuple[float, int]:
    """Run one command; (wall seconds, peak RSS in KiB of that command alone).

    Through ``bench.common.time_command``: the peak RSS is read by a fresh wrapper process
    (a child's ``ru_maxrss`` seen from this process would count our own pages, which the
    forked child starts with), and the time is the command's own, without the wrapper's.
    """
    return time_command(argv, env=env, check=True)


def _fetch_delete(peers: Peers, make: Callable[[], list[bytes]], label: str,
                  build: Callable[..., tuple[list[str], dict[str, str]]]) -> Sample:
    """One user per run, filled before the clock starts. Messages are made and dropped
    before the child starts: a forked child's peak RSS counts the parent's pages."""
    sample = Sample(label)
    dovecot = peers.dovecot
    for _ in range(RUNS):
        user = dovecot.add_user()  # type: ignore[attr-defined]
        msgs = make()
        count = len(msgs)
        dovecot.deliver_many(user, msgs)  # type: ignore[attr-defined]
        del msgs
        dest = peers.work / f"dest-{user.name}"
        _maildir(dest)
        argv, env = build(user, dest, delete=True)
        seconds, rss_kb = _run(argv, env)
        got = sum(len(os.listdir(dest / s)) for s in ("new", "cur"))
        left = len(dovecot.messages(user))  # type: ignore[attr-defined]
        if got != count or left:
            raise RuntimeError(f"{label}: stored {got} of {count}, {left} left on server")
        sample.seconds.append(seconds)
        sample.peak_rss_kb.append(rss_kb)
        shutil.rmtree(dest, ignore_errors=True)
    return sample


#: Median CPU seconds (user + sys, the process and its children) of each tool's keep-mode
#: rerun: steadier than wall time on a shared machine.
KEEP_CPU: dict[str, float] = {}


def _cpu_seconds(argv: list[str], env: dict[str, str], runs: int) -> float:
    """Median user+sys CPU of ``runs`` runs of ``argv`` (its whole process tree)."""
    spent = []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(argv, env={**os.environ, **env}, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        spent.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return statistics.median(spent)


def _keep_rerun(peers: Peers, msgs: list[bytes], label: str,
                build: Callable[..., tuple[list[str], dict[str, str]]]) -> Sample:
    dovecot = peers.dovecot
    user = dovecot.add_user()  # type: ignore[attr-defined]
    dovecot.deliver_many(user, msgs)  # type: ignore[attr-defined]
    dest = peers.work / f"keep-{user.name}"
    _maildir(dest)
    argv, env = build(user, dest, delete=False)
    _run(argv, env)  # the first, full fetch
    got = sum(len(os.listdir(dest / s)) for s in ("new", "cur"))
    if got != len(msgs):
        raise RuntimeError(f"{label}: keep-mode first run stored {got} of {len(msgs)}")
    # fetchmail exits 1 for "no mail": the file count below is the check.
    sample = measure(label, argv, runs=max(RUNS, 5), warmup=1, env=env, check=False)
    KEEP_CPU[label] = _cpu_seconds(argv, env, max(RUNS, 5))
    again = sum(len(os.listdir(dest / s)) for s in ("new", "cur"))
    if again != got:
        raise RuntimeError(f"{label}: keep-mode rerun fetched {again - got} messages again")
    shutil.rmtree(dest, ignore_errors=True)
    return sample


def _each(tools: list[tuple[str, Callable[..., tuple[list[str], dict[str, str]]]]],
          run: Callable[[str, Callable[..., tuple[list[str], dict[str, str]]]], Sample],
          ) -> list[Sample]:
    """Run a workload for every tool; a peer that fails is reported and left out."""
    out = []
    for label, build in tools:
        try:
            out.append(run(label, build))
        except RuntimeError as exc:
            print(f"{label}: FAILED: {str(exc)[-300:]}")
    return out


def _report(title: str, samples: list[Sample], baseline: str) -> None:
    if any(s.label == baseline for s in samples):
        report(title, samples, baseline)
    elif samples:
        report(title, samples, samples[0].label)


def main() -> None:
    from tests.servers._process import make_servers_dir
    from tests.servers.ca import TestCA
    from tests.servers.dovecot import Dovecot

    missing = [t for t in ("fetchmail", "getmail") if shutil.which(t) is None]
    if missing:
        print(f"missing peers: {', '.join(missing)} (apt-get install -y fetchmail getmail6)")
        return
    base = make_servers_dir()
    ca = TestCA(base / "tls")
    dovecot = Dovecot(base / "dovecot", ca)
    dovecot.start()
    work = Path(tempfile.mkdtemp(prefix="pop-bench-", dir="/var/tmp"))
    work.chmod(0o755)
    try:
        peers = Peers(dovecot, str(ca.ca_file), work)
        tools = [("mailtool pop-fetch", peers.mailtool), ("fetchmail (mda cat)", peers.fetchmail),
                 ("getmail6", peers.getmail)]
        msgs = _messages(MESSAGES)
        total = sum(len(m) for m in msgs) / 1e6
        samples = _each(tools, lambda label, build: _fetch_delete(peers, lambda: msgs, label, build))
        for base_label in ("fetchmail (mda cat)", "getmail6"):
            _report(f"fetch+delete {MESSAGES} messages ({total:.1f} MB), median of {RUNS}",
                    samples, base_label)
        keep = _each(tools, lambda label, build: _keep_rerun(peers, msgs, label, build))
        # The floor under mailtool's rerun: starting the CLI and importing what pop-fetch
        # needs (click, config, TLS...), with no connection at all.
        # The floor under mailtool's rerun: the CLI and the POP library starting, up to a
        # refused connection (no TLS, no login). --help goes through Click (the slow path).
        from tests.faults.server import dead_port

        keep.append(measure("mailtool pop-fetch, refused (start-up)",
                            [tool("mailtool") or "mailtool", "pop-fetch", "--host",
                             "127.0.0.1", "--port", str(dead_port()), "--tls", "none",
                             "--user", "x", "--maildir", str(work / "floor")],
                            runs=max(RUNS, 5), warmup=1, check=False,
                            env={"MAILTOOL_PASSWORD": "x"}))
        keep.append(measure("mailtool pop-fetch --help (Click)",
                            [tool("mailtool") or "mailtool", "pop-fetch", "--help"],
                            runs=max(RUNS, 5), warmup=1))
        _report(f"keep-mode rerun, nothing new ({MESSAGES} on the server)", keep,
                "fetchmail (mda cat)")
        if KEEP_CPU:
            base_cpu = KEEP_CPU.get("fetchmail (mda cat)")
            print(f"\n{'keep-mode rerun CPU (user+sys)':40} {'median':>10} {'ratio':>8}")
            for label, cpu in KEEP_CPU.items():
                ratio = f"{cpu / base_cpu:8.2f}" if base_cpu else "       -"
                print(f"{label:40} {cpu * 1000:8.1f}ms {ratio}")
        big = _each(tools, lambda label, build: _fetch_delete(peers, lambda: [_big(BIG_MB)], label, build))
        _report(f"one {BIG_MB} MB message, fetch+delete", big, "fetchmail (mda cat)")
        print(f"\n{'peak RSS, ' + str(BIG_MB) + ' MB message':40} {'max':>10}")
        for s in big:
            print(f"{s.label:40} {max(s.peak_rss_kb) / 1024:8.1f}MB")
    finally:
        dovecot.stop()
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
