"""send benchmarks against Postfix's smtp-sink (a fast local sink), peers in the same run.

(a) one message, whole process: ``mailtool-sendmail`` vs ``msmtp`` vs ``swaks``, and
    ``mailtool send``.
(b) many messages: ``mailtool send --batch`` (one connection, pipelined) vs one ``msmtp``
    process per message vs ``smtp-source -s 1 -d`` (one session: the floor).

Run: ``.venv/bin/python bench/run.py send`` (msmtp and swaks: ``apt-get install -y msmtp
swaks``). Medians of several runs; throughput in messages per second.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import Sample, measure, report, time_command, tool

SENDER = "bench@src.test"
RCPT = "sink@dst.test"
BODY = ("x" * 72 + "\n") * 6  # about 450 octets of body
MESSAGE = (f"From: {SENDER}\nTo: {RCPT}\nSubject: bench\nMessage-ID: <b@src.test>\n\n{BODY}"
           ).encode()
BATCH = 1000
MSMTP_SAMPLE = 100  # msmtp processes per throughput run (about 19/s: 1000 would take ages)
RUNS = 7


def _free_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    sock.close()
    return port


def _start_sink() -> tuple[subprocess.Popen[bytes], int]:
    binary = tool("smtp-sink") or "/usr/sbin/smtp-sink"
    port = _free_port()
    args = [binary, f"127.0.0.1:{port}", "256"]
    if os.geteuid() == 0:
        args[1:1] = ["-u", "nobody"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                if s.recv(100).startswith(b"220"):
                    return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("smtp-sink did not start")


def _rate(sample: Sample, count: int) -> float:
    return count / sample.median


def _load() -> str:
    """The load average (1, 5, 15 min): wall times on a shared machine need it."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    print(f"load average at start: {_load()}")
    sink, port = _start_sink()
    home = tempfile.mkdtemp(prefix="send-bench-")
    env = {"HOME": home, "XDG_CONFIG_HOME": home, "MAILTOOL_SMARTHOST": f"127.0.0.1:{port}",
           "MAILTOOL_TLS": "none", "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
           # Byte-code caching as in a normal install (this sandbox sets
           # PYTHONDONTWRITEBYTECODE): caches go to a temp dir, not into the tree.
           "PYTHONDONTWRITEBYTECODE": "", "PYTHONPYCACHEPREFIX": os.path.join(home, "pyc")}
    try:
        samples = []
        sendmail = tool("mailtool-sendmail")
        mailtool = tool("mailtool")
        msmtp = tool("msmtp")
        swaks = tool("swaks")
        assert sendmail and mailtool, "install mailtool into .venv first"
        samples.append(measure("mailtool-sendmail -oi -f", [sendmail, "-oi", "-f", SENDER,
                                                            RCPT], runs=RUNS * 3, input=MESSAGE,
                               env=env))
        msmtp_argv: list[str] = []
        if msmtp:
            msmtp_argv = [msmtp, "--host=127.0.0.1", f"--port={port}", "--auth=off",
                          "--tls=off", f"--from={SENDER}", RCPT]
            samples.append(measure("msmtp", msmtp_argv, runs=RUNS * 3, input=MESSAGE, env=env))
        if swaks:
            with tempfile.NamedTemporaryFile(delete=False, suffix=".eml") as fh:
                fh.write(MESSAGE)
            samples.append(measure("swaks", [swaks, "--server", f"127.0.0.1:{port}", "--from",
                                             SENDER, "--to", RCPT, "--data", fh.name,
                                             "--silent", "2"], runs=RUNS, env=env))
        samples.append(measure("mailtool send (stdin)", [
            mailtool, "send", "--smarthost", f"127.0.0.1:{port}", "--tls", "none", "-f", SENDER,
            RCPT], runs=RUNS, input=MESSAGE, env=env))
        report("(a) one message, whole process (wall)", samples,
               "msmtp" if msmtp else samples[0].label)

        # (b) throughput
        mbox = b"".join(b"From bench@src.test Thu Jan  1 00:00:00 2026\n" + MESSAGE + b"\n"
                        for _ in range(BATCH))
        batch = measure(f"mailtool send --batch ({BATCH})", [
            mailtool, "send", "--smarthost", f"127.0.0.1:{port}", "--tls", "none", "--batch"],
            runs=5, input=mbox, env=env)
        rates = [("mailtool send --batch", _rate(batch, BATCH))]
        source = tool("smtp-source") or "/usr/sbin/smtp-source"
        floor = measure(f"smtp-source -s 1 -d ({BATCH})", [
            source, "-s", "1", "-d", "-m", str(BATCH), "-l", str(len(BODY)), "-f", SENDER,
            "-t", RCPT, f"127.0.0.1:{port}"], runs=5, env=env)
        rates.append(("smtp-source -s 1 -d", _rate(floor, BATCH)))
        if msmtp:
            per = Sample(f"msmtp x{MSMTP_SAMPLE}")
            for _ in range(3):
                start = time.perf_counter()
                for _ in range(MSMTP_SAMPLE):
                    time_command(msmtp_argv, input=MESSAGE, env=env)
                per.seconds.append(time.perf_counter() - start)
            rates.append(("msmtp, one process per message", _rate(per, MSMTP_SAMPLE)))
        print(f"\n## (b) throughput, messages/s (median of runs; {BATCH} messages)")
        base = dict(rates)
        for label, rate in rates:
            extra = []
            if "msmtp, one process per message" in base:
                extra.append(f"{rate / base['msmtp, one process per message']:.1f}x msmtp")
            extra.append(f"{rate / base['smtp-source -s 1 -d']:.2f}x smtp-source")
            print(f"{label:40} {rate:10.0f}/s  " + ", ".join(extra))
        print(f"\nload average at end: {_load()}")
        sys.stdout.flush()
    finally:
        sink.terminate()
        sink.wait(timeout=10)


if __name__ == "__main__":
    main()
