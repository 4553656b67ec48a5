"""Start the private servers from a shell: ``python -m tests.servers [--json] [--keep]``.

Prints the ports, users and CA file, then waits until Ctrl-C or SIGTERM and
stops every server. With ``--json`` the description is one JSON line on stdout
(for scripts: read one line, then use the servers; terminate the process to stop).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from types import FrameType
from typing import Any

from . import ServerError, ServerSet


def _stop_on_signal(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.servers", description=__doc__)
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    parser.add_argument("--keep", action="store_true", help="keep the work dir after stopping")
    parser.add_argument("--users", type=int, default=0, metavar="N",
                        help="add N more users with random names and passwords")
    args = parser.parse_args(argv)

    signal.signal(signal.SIGTERM, _stop_on_signal)
    servers = ServerSet(keep=args.keep)
    try:
        servers.start()
    except ServerError as exc:
        print(f"tests.servers: {exc}", file=sys.stderr)
        return 1
    try:
        for _ in range(args.users):
            servers.dovecot.add_user()
        info = servers.describe()
        if args.json:
            print(json.dumps(info), flush=True)
        else:
            _print_human(info)
        while True:
            signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        servers.stop()
    return 0


def _print_human(info: dict[str, Any]) -> None:
    d, p, n = info["dovecot"], info["postfix"], info["dnsmasq"]
    host = info["host"]
    lines = [
        f"work dir     {info['workdir']}",
        f"CA file      {info['ca_file']}",
        f"IMAP         {host}:{d['imap']} (STARTTLS)   IMAPS {host}:{d['imaps']}   "
        f"(on {d['strict_host']}: no cleartext login before TLS)",
        f"POP3         {host}:{d['pop3']} (STLS)       POP3S {host}:{d['pop3s']}",
        f"LMTP         {host}:{d['lmtp']}",
        f"SMTP         {host}:{p['smtp']} (port 25 style, no AUTH) for "
        + ", ".join(p["domains"]),
        f"submission   {host}:{p['submission']} (STARTTLS required, AUTH)",
        f"DNS          {host}:{n['port']} (UDP and TCP)",
        "users        " + ", ".join(f"{u['name']} / {u['password']}" for u in info["users"]),
        "started in   " + ", ".join(f"{k} {v:.2f} s" for k, v in info["startup_seconds"].items()),
        "Ctrl-C stops all servers.",
    ]
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    sys.exit(main())
