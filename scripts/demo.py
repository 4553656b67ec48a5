"""The README's demo: start private Dovecot, Postfix and dnsmasq on loopback, then show
mailtool doing its main jobs against them, each command printed before it runs.

    make demo        (or: .venv/bin/python scripts/demo.py)

Nothing touches the system's own mail services; everything lives in a temporary directory
that is removed at the end. Exits non-zero if a step that should work does not.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.servers import ServerSet  # noqa: E402

MAILTOOL = [sys.executable, "-m", "mailtool"]
COMMANDS_DIR = ROOT / "mailtool" / "cli" / "commands"


def have(command: str) -> bool:
    return (COMMANDS_DIR / f"{command.replace('-', '_')}.py").exists()


def banner(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m" if sys.stdout.isatty() else f"\n== {text}", flush=True)


def run(args: list[str], *, env: dict[str, str], input: bytes | None = None,
        expect: int | None = 0) -> subprocess.CompletedProcess[bytes]:
    shown = " ".join(shlex.quote(a) for a in ["mailtool", *args])
    print(f"$ {shown}", flush=True)
    proc = subprocess.run([*MAILTOOL, *args], input=input, env=env, capture_output=True,
                          timeout=120, check=False,
                          stdin=None if input is not None else subprocess.DEVNULL)
    for stream in (proc.stdout, proc.stderr):
        text = stream.decode("utf-8", "replace").rstrip()
        if text:
            print("  " + text.replace("\n", "\n  "), flush=True)
    print(f"  (exit {proc.returncode})", flush=True)
    if expect is not None and proc.returncode != expect:
        raise SystemExit(f"demo: step failed: expected exit {expect}, got {proc.returncode}")
    return proc


def wait_for_mail(maildir: Path, count: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = sum(1 for sub in ("new", "cur") if (maildir / sub).exists()
                    for _ in (maildir / sub).iterdir())
        if found >= count:
            return
        time.sleep(0.1)
    raise SystemExit(f"demo: mail did not arrive in {maildir} within {timeout:g} s")


def main() -> int:
    if os.geteuid() != 0:
        print("demo: the private Dovecot and Postfix need root (run as root or with sudo)",
              file=sys.stderr)
        return 77
    banner("Starting private Dovecot, Postfix and dnsmasq on loopback")
    with ServerSet() as servers, tempfile.TemporaryDirectory(prefix="mailtool-demo-") as tmp:
        info = servers.describe()
        d, p, n = servers.dovecot, servers.postfix, servers.dnsmasq
        print(f"  started in {sum(info['startup_seconds'].values()):.2f} s: "
              f"IMAP {d.imap_port}, IMAPS {d.imaps_port}, POP3S {d.pop3s_port}, "
              f"submission {p.submission_port}, MX {p.smtp_port}, DNS {n.port}")
        alice = d.add_user("alice-demo", "alice-secret")
        bob = d.add_user("bob-demo", "bob-secret")
        home = Path(tmp)
        config = home / "config.toml"
        config.write_text(
            f'default_account = "alice"\n\n'
            f'[accounts.alice]\nfrom = "Alice Demo <{alice.address}>"\n\n'
            f'[accounts.alice.smtp]\nhost = "localhost"\nport = {p.submission_port}\n'
            f'tls = "starttls"\nuser = "{alice.name}"\nca_file = "{servers.ca.ca_file}"\n\n'
            f'[accounts.alice.pop3]\nhost = "localhost"\nport = {d.pop3s_port}\n'
            f'tls = "implicit"\nuser = "{alice.name}"\nca_file = "{servers.ca.ca_file}"\n\n'
            f'[accounts.bob.imap]\nhost = "localhost"\nport = {d.imaps_port}\n'
            f'tls = "implicit"\nuser = "{bob.name}"\nca_file = "{servers.ca.ca_file}"\n'
        )
        config.chmod(0o600)
        env = dict(os.environ)
        env.update({
            "MAILTOOL_CONFIG": str(config),
            "XDG_STATE_HOME": str(home / "state"),
            "XDG_CACHE_HOME": str(home / "cache"),
            "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
            "MAILTOOL_PASSWORD": "alice-secret",
            "PYTHONPATH": str(ROOT),
        })
        empty = home / "empty.toml"
        empty.write_text("# no accounts: direct MX delivery\n")
        empty.chmod(0o600)  # as the README asks of a config file (mailtool warns otherwise)
        report = home / "report.csv"
        report.write_text("host,status\nweb1,ok\nweb2,degraded\n")

        if have("send"):
            banner("send: submission with STARTTLS + AUTH, with an attachment")
            run(["send", "--to", alice.address, "--subject", "Nightly report ✓",
                 "--body", "Report attached.\n.a line starting with a dot\n",
                 "--attach", str(report)], env=env)
            banner("send: a message read on stdin, sendmail style (-t)")
            run(["send", "-t"], env=env, input=(
                f"From: cron@mail.test\nTo: {alice.address}\nBcc: {bob.address}\n"
                "Subject: cron output\n\nbackup finished\n").encode())
            banner("send --dry-run: direct MX delivery routes from DNS")
            run(["send", "--dry-run", "--dns-server", f"127.0.0.1:{n.port}",
                 "--port", str(p.smtp_port), "--from", "demo@example.test",
                 "--to", bob.address, "--to", "someone@nullmx.test", "--body", "hi"],
                env={**env, "MAILTOOL_CONFIG": str(empty)}, expect=None)
            banner("send: direct delivery to the MX hosts of mail.test (and a null MX domain)")
            run(["send", "--dns-server", f"127.0.0.1:{n.port}", "--port", str(p.smtp_port),
                 "--from", "demo@example.test", "--to", bob.address,
                 "--to", "someone@nullmx.test", "--subject", "direct", "--body", "via MX"],
                env={**env, "MAILTOOL_CONFIG": str(empty)}, expect=None)
            wait_for_mail(alice.maildir, 2)
            wait_for_mail(bob.maildir, 2)

        if have("pop-fetch"):
            maildir = home / "Mail" / "alice"
            banner("pop-fetch: POP3S into a Maildir, deleting on the server once stored")
            run(["-v", "pop-fetch", "--maildir", str(maildir), "--delete"], env=env, expect=None)
            print(f"  stored: {sorted(p.name[:40] for p in (maildir / 'new').iterdir())}")
            banner("pop-fetch again: nothing new, nothing printed (cron-friendly)")
            run(["pop-fetch", "--maildir", str(maildir), "--delete"], env=env)

        bob_env = {**env, "MAILTOOL_PASSWORD": "bob-secret"}
        if have("imap-list"):
            banner("imap-list: bob's folders, then his INBOX")
            run(["--account", "bob", "imap-list"], env=bob_env)
            run(["--account", "bob", "imap-list", "INBOX"], env=bob_env)
        if have("imap-sync"):
            banner("imap-sync: mirror bob's mailbox into a local Maildir tree")
            run(["--account", "bob", "imap-sync", "--maildir", str(home / "Mail" / "bob")],
                env=bob_env)

        if have("explain"):
            banner("explain: what does a reply mean?")
            run(["explain", "451 4.7.1 Greylisted, try again later"], env=env)
        if have("diagnose"):
            banner("diagnose: the MX hosts of mail.test")
            run(["diagnose", "mail.test", "--dns-server", f"127.0.0.1:{n.port}",
                 "--port", str(p.smtp_port), "--ca-file", str(servers.ca.ca_file)],
                env=env, expect=None)
        banner("Stopping the servers")
    print("demo: done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
