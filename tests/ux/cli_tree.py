"""The Click command tree for the UX tests (new commands are covered automatically)."""

from __future__ import annotations

import os
import pty
import select
import signal
import sys
import time
from pathlib import Path

import click

from scripts.gen_completions import Node, build_tree

ROOT = Path(__file__).resolve().parents[2]


def all_nodes() -> list[Node]:
    return build_tree().walk()


def node_ids(nodes: list[Node]) -> list[str]:
    return [node.key or "mailtool" for node in nodes]


def has_option(node: Node, name: str) -> bool:
    return any(name in opt.names for opt in node.options)


def leaf(node: Node) -> bool:
    return not isinstance(node.command, click.Group)


class PtySession:
    """``mailtool ARGS`` on a pseudo-terminal: read what it prints, answer its prompts."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        full_env = dict(os.environ)
        full_env.update(env or {})
        full_env.setdefault("PYTHONPATH", str(ROOT))
        full_env.setdefault("TERM", "xterm-256color")
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: become mailtool
            try:
                os.execve(sys.executable, [sys.executable, "-m", "mailtool", *args], full_env)
            finally:
                os._exit(127)
        self.output = b""

    def expect(self, text: str, timeout: float = 30) -> str:
        """Read until ``text`` appears; return everything read so far (decoded)."""
        deadline = time.monotonic() + timeout
        needle = text.encode()
        while needle not in self.output:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out waiting for {text!r}; got:\n{self.text}")
            ready, _w, _x = select.select([self.fd], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.fd, 4096)
                except OSError:
                    chunk = b""
                if not chunk:
                    raise AssertionError(f"EOF waiting for {text!r}; got:\n{self.text}")
                self.output += chunk
        return self.text

    def send(self, line: str) -> None:
        os.write(self.fd, line.encode() + b"\r")

    @property
    def text(self) -> str:
        return self.output.decode("utf-8", "replace")

    def wait(self, timeout: float = 30) -> int:
        """Drain the output and return the exit status."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _w, _x = select.select([self.fd], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(self.fd, 4096)
                except OSError:
                    chunk = b""
                if chunk:
                    self.output += chunk
                    continue
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                os.close(self.fd)
                return os.waitstatus_to_exitcode(status)
        os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        os.close(self.fd)
        raise AssertionError(f"mailtool did not exit; output:\n{self.text}")
