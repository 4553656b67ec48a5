"""Free loopback ports for private server instances.

Ports come from below the kernel's ephemeral range, so that the many outgoing
connections a benchmark makes cannot take a port between the moment we pick it
and the moment the server binds it. A port is only offered after a trial bind
(TCP, and UDP when asked) succeeds, and one process never hands out the same
port twice. Another process can still take a port before the server binds it;
the servers retry their start with new ports when that happens.
"""

from __future__ import annotations

import functools
import random
import socket
import threading
from pathlib import Path

HOST = "127.0.0.1"
HOST6 = "::1"

# Lowest port we pick: above the registered ports that system services commonly use.
_LOWEST = 20000
# Used when /proc does not say where the ephemeral range starts (Linux default).
_DEFAULT_EPHEMERAL_LOW = 32768
# Trial binds before giving up; the range has thousands of ports, so this is generous.
_MAX_TRIES = 500

_lock = threading.Lock()
_handed_out: set[int] = set()


def _ephemeral_low() -> int:
    try:
        text = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text()
        return int(text.split()[0])
    except (OSError, ValueError, IndexError):
        return _DEFAULT_EPHEMERAL_LOW


def _bindable(host: str, port: int, kind: socket.SocketKind) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, kind) as sock:
        if kind == socket.SOCK_STREAM:
            # Servers set SO_REUSEADDR too, so a port in TIME_WAIT is usable.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


@functools.cache
def ipv6_loopback() -> bool:
    """Whether this machine has a usable ::1 (containers may have IPv6 off)."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind((HOST6, 0))
    except OSError:
        return False
    return True


def free_port(host: str = HOST, *, udp: bool = False, also: tuple[str, ...] = ()) -> int:
    """Return a TCP port on ``host`` that nothing listens on (and a free UDP one if ``udp``).

    ``also`` names more addresses (e.g. ``::1``) where the same port must be free.
    """
    high = _ephemeral_low() - 1
    low = _LOWEST if high > _LOWEST + 1000 else 1024
    with _lock:
        for _ in range(_MAX_TRIES):
            port = random.randint(low, high)
            if port in _handed_out:
                continue
            if not all(_bindable(h, port, socket.SOCK_STREAM) for h in (host, *also)):
                continue
            if udp and not all(_bindable(h, port, socket.SOCK_DGRAM) for h in (host, *also)):
                continue
            _handed_out.add(port)
            return port
    raise RuntimeError(f"no free port found on {host} in {low}-{high}")


def free_ports(count: int, host: str = HOST, *, udp: bool = False,
               also: tuple[str, ...] = ()) -> list[int]:
    """Return ``count`` distinct free ports (see :func:`free_port`)."""
    return [free_port(host, udp=udp, also=also) for _ in range(count)]


def release(ports: list[int] | tuple[int, ...]) -> None:
    """Allow ports that a stopped server no longer uses to be handed out again."""
    with _lock:
        _handed_out.difference_update(ports)
