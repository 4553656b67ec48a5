"""A private Postfix: submission and port-25-style SMTP delivering into the private Dovecot.

Theory of operation: Postfix's ``master`` runs in the foreground (``master -c
<workdir>/etc``, no ``postfix start`` wrapper, so no checks of the system-wide
install and a pid we own) with its own main.cf, master.cf, queue and data
directories, and logs through its ``postlogd`` service to ``<workdir>/postfix.log``.

Two smtpd listeners on free loopback ports:

* ``smtp_port`` (like port 25): no AUTH, STARTTLS offered, accepts mail for the
  test domains only; anything else is ``554 5.7.1 Relay access denied``.
* ``submission_port`` (like 587): STARTTLS required before anything else, AUTH
  (Dovecot SASL over the Dovecot auth socket) only after TLS, and only
  authenticated clients may send, to any domain.

Mail for the test domains goes to Dovecot over LMTP. Unknown users at a test
domain are refused at RCPT with ``550 5.1.1``: the recipients are a hash map that
is rebuilt (``postmap``) whenever a Dovecot user is added; smtpd notices the
changed map before its next connection and restarts. (A user added while an SMTP
session is open is known from the next session on.) Mail that authenticated
clients relay to other domains is discarded (the sandbox has no internet), and
recorded in the log.

``smtp_sink()`` starts Postfix's ``smtp-sink`` test server for benchmarks.
"""

from __future__ import annotations

import grp
import os
import pwd
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from . import ports
from ._process import (
    Deadline,
    Server,
    ServerError,
    find_binary,
    run,
    wait_for_greeting,
    write_text,
)
from .ca import TestCA
from .dovecot import Dovecot, User

POSTFIX_DIRS = ("/usr/lib/postfix/sbin", "/usr/libexec/postfix", "/usr/lib/postfix")
# Queue subdirectories master.cf services need, with owner and mode as post-install sets them.
_QUEUE_DIRS = {
    "active": 0o700, "bounce": 0o700, "corrupt": 0o700, "defer": 0o700, "deferred": 0o700,
    "flush": 0o700, "hold": 0o700, "incoming": 0o700, "private": 0o700, "saved": 0o700,
    "trace": 0o700, "maildrop": 0o730, "public": 0o710,
}
# Test domains besides Dovecot's own whose MX (or A) records in the default DNS
# records lead to 127.0.0.1, so direct MX delivery tests can land here; a user
# "x" receives x@mail.test and x@<each of these> in the same mailbox.
EXTRA_DOMAINS = ("other.test", "two.test", "dead.test", "nomx.test")
# smtp-sink's listen backlog: benchmarks open many connections at once.
SINK_BACKLOG = 256


class Postfix(Server):
    """A private Postfix instance; see the module docstring."""

    name = "postfix"
    port_in_use_markers = ("Address already in use", "bind 127.0.0.1")

    def __init__(self, workdir: Path, dovecot: Dovecot, ca: TestCA, *,
                 domains: Sequence[str] = EXTRA_DOMAINS) -> None:
        super().__init__(workdir)
        self.dovecot = dovecot
        self.ca = ca
        # Dovecot's domain first; extra domains deliver to the same local parts.
        self.domains = [dovecot.domain, *[d for d in domains if d != dovecot.domain]]
        self.config_dir = self.workdir / "etc"
        self.queue_dir = self.workdir / "queue"
        self.data_dir = self.workdir / "data"
        self.recipients_map = self.config_dir / "recipients"
        self.smtp_port = 0
        self.submission_port = 0
        self.listen = [self.host]
        self._master = find_binary("master", POSTFIX_DIRS)
        self._postmap = find_binary("postmap")
        self._sinks: list[SMTPSink] = []
        self._map_lock = threading.Lock()
        dovecot.on_user_added(self._user_added)

    # -- recipients ----------------------------------------------------------------
    def _user_added(self, user: User) -> None:
        if self.config_dir.is_dir():
            self._write_recipients()

    def _write_recipients(self) -> None:
        lines = [f"{user.name}@{domain}\t{user.name}\n"
                 for user in list(self.dovecot.users.values()) for domain in self.domains]
        # Build the new table under another name and rename it into place: a running
        # smtpd then finds its open table unlinked (st_nlink == 0) before it accepts
        # the next connection, and restarts. A table rebuilt in place would go
        # unnoticed when its mtime stays within the same second.
        with self._map_lock:
            source = self.recipients_map.with_name(self.recipients_map.name + "-new")
            write_text(source, "".join(lines), 0o644, backdate=True)
            run([self._postmap, "-c", str(self.config_dir), f"hash:{source}"])
            os.replace(source.with_name(source.name + ".db"),
                       self.recipients_map.with_name(self.recipients_map.name + ".db"))
            os.replace(source, self.recipients_map)

    # -- helpers for benchmarks ----------------------------------------------------
    def smtp_sink(self, port: int | None = None, args: Sequence[str] = ()) -> SMTPSink:
        """Start Postfix's smtp-sink on a free port; it stops with this Postfix or alone."""
        sink = SMTPSink(self.workdir / f"sink-{len(self._sinks) + 1}", port=port, args=args)
        sink.start()
        self._sinks.append(sink)
        return sink

    # -- Server hooks --------------------------------------------------------------
    def _configure(self) -> None:
        if os.geteuid() != 0:
            raise ServerError("the private Postfix needs root (its master drops to 'postfix')")
        owner = pwd.getpwnam("postfix")
        postdrop = grp.getgrnam("postdrop").gr_gid
        os.chmod(self.workdir, 0o711)
        self.config_dir.mkdir(exist_ok=True)
        os.chmod(self.config_dir, 0o755)
        self.queue_dir.mkdir(exist_ok=True)
        os.chmod(self.queue_dir, 0o755)
        for name, mode in _QUEUE_DIRS.items():
            path = self.queue_dir / name
            path.mkdir(exist_ok=True)
            group = postdrop if name in ("public", "maildrop") else owner.pw_gid
            os.chown(path, owner.pw_uid, group)
            os.chmod(path, mode)
        (self.queue_dir / "pid").mkdir(exist_ok=True)
        self.data_dir.mkdir(exist_ok=True)
        os.chown(self.data_dir, owner.pw_uid, owner.pw_gid)
        os.chmod(self.data_dir, 0o700)
        # Also on ::1 when the machine has it (clients resolving "localhost" to ::1).
        self.listen = [self.host, *([ports.HOST6] if ports.ipv6_loopback() else [])]
        self.smtp_port, self.submission_port = ports.free_ports(
            2, self.host, also=tuple(self.listen[1:]))
        write_text(self.config_dir / "main.cf", self._main_cf(), 0o644, backdate=True)
        write_text(self.config_dir / "master.cf", self._master_cf(), 0o644, backdate=True)
        self._write_recipients()

    def _main_cf(self) -> str:
        d = self.dovecot
        return f"""\
# Private Postfix for the mailtool tests (written by tests/servers/postfix.py).
compatibility_level = 3.6
queue_directory = {self.queue_dir}
data_directory = {self.data_dir}
mail_owner = postfix
setgid_group = postdrop
syslog_name = postfix-mailtool-test
maillog_file = {self.log_path}
maillog_file_prefixes = {self.workdir}
myhostname = mx.{d.domain}
mydomain = {d.domain}
myorigin = $myhostname
mydestination =
# No client is trusted by address: every test client is on 127.0.0.1.
mynetworks =
inet_interfaces = loopback-only
inet_protocols = {"all" if len(self.listen) > 1 else "ipv4"}
smtputf8_enable = yes
smtpd_banner = $myhostname ESMTP Postfix (mailtool test)
biff = no
append_dot_mydomain = no
alias_maps =
alias_database =
local_recipient_maps =
relay_domains =
smtpd_peername_lookup = no

virtual_mailbox_domains = {", ".join(self.domains)}
virtual_mailbox_maps = hash:{self.recipients_map}
virtual_transport = lmtp:inet:{d.host}:{d.lmtp_port}
# Relayed mail (authenticated submission to other domains) goes nowhere.
default_transport = discard:relaying is disabled in the test instance
unknown_virtual_mailbox_reject_code = 550
smtpd_reject_unlisted_recipient = yes
smtpd_relay_restrictions = permit_sasl_authenticated, reject_unauth_destination
smtpd_recipient_restrictions =

smtpd_tls_security_level = may
smtpd_tls_cert_file = {self.ca.server.cert_file}
smtpd_tls_key_file = {self.ca.server.key_file}
smtpd_tls_auth_only = yes
smtpd_tls_loglevel = 1
smtpd_tls_received_header = yes
smtpd_sasl_type = dovecot
smtpd_sasl_path = {d.auth_socket}
smtpd_sasl_auth_enable = no
smtpd_sasl_authenticated_header = yes
lmtp_tls_security_level = none

# Fast: no sleeping after errors, no flow or queue delays.
smtpd_error_sleep_time = 0
smtpd_soft_error_limit = 100
smtpd_hard_error_limit = 200
in_flow_delay = 0
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 5s
maximal_queue_lifetime = 1h
bounce_queue_lifetime = 1h
delay_warning_time = 0
lmtp_destination_concurrency_limit = 20
anvil_rate_time_unit = 60s
"""

    def _master_cf(self) -> str:
        submission_options = ("  -o syslog_name=postfix-mailtool-test/submission\n"
                              "  -o smtpd_tls_security_level=encrypt\n"
                              "  -o smtpd_sasl_auth_enable=yes\n"
                              "  -o smtpd_client_restrictions=permit_sasl_authenticated,reject\n"
                              "  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject\n"
                              "  -o milter_macro_daemon_name=ORIGINATING")
        listeners = []
        for address in self.listen:
            where = f"[{address}]" if ":" in address else address
            listeners.append(f"{where}:{self.smtp_port} inet n - n - - smtpd")
            listeners.append(f"{where}:{self.submission_port} inet n - n - - smtpd\n"
                             + submission_options)
        services = [
            *listeners,
            "cleanup unix n - n - 0 cleanup",
            "qmgr unix n - n 1 1 qmgr",
            "tlsmgr unix - - n 1000? 1 tlsmgr",
            "rewrite unix - - n - - trivial-rewrite",
            "bounce unix - - n - 0 bounce",
            "defer unix - - n - 0 bounce",
            "trace unix - - n - 0 bounce",
            "verify unix - - n - 1 verify",
            "flush unix n - n 1000? 0 flush",
            "proxymap unix - - n - - proxymap",
            "smtp unix - - n - - smtp",
            "relay unix - - n - - smtp",
            "showq unix n - n - - showq",
            "error unix - - n - - error",
            "retry unix - - n - - error",
            "discard unix - - n - - discard",
            "lmtp unix - - n - - lmtp",
            "anvil unix - - n - 1 anvil",
            "scache unix - - n - 1 scache",
            "postlog unix-dgram n - n - 1 postlogd",
        ]
        header = ("# Private Postfix services (written by tests/servers/postfix.py).\n"
                  "# service type private unpriv chroot wakeup maxproc command\n")
        return header + "\n".join(services) + "\n"

    def _argv(self) -> list[str]:
        return [self._master, "-c", str(self.config_dir)]

    def _env(self) -> dict[str, str]:
        # Postfix imports only a few variables; keep the run independent of the caller's.
        return {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "MAIL_CONFIG": str(self.config_dir)}

    def _wait_ready(self, deadline: Deadline) -> None:
        for port in (self.smtp_port, self.submission_port):
            wait_for_greeting(self.host, port, b"220", deadline, self._check_alive)

    def _after_stop(self) -> None:
        for sink in self._sinks:
            sink.stop()
        self._sinks.clear()
        ports.release([self.smtp_port, self.submission_port])

    def queue_ids(self) -> list[str]:
        """Ids of messages still in the queue (any state)."""
        found: list[str] = []
        for state in ("incoming", "active", "deferred", "hold"):
            base = self.queue_dir / state
            if base.is_dir():
                found.extend(p.name for p in base.rglob("*") if p.is_file())
        return found

    def wait_queue_empty(self, timeout: float = 10.0) -> None:
        """Poll until the queue is empty (all accepted mail delivered or discarded)."""
        deadline = Deadline(timeout)
        while self.queue_ids():
            if deadline.expired():
                raise ServerError(f"postfix queue not empty after {timeout} s: "
                                  f"{self.queue_ids()}")
            time.sleep(0.02)


class SMTPSink(Server):
    """Postfix's smtp-sink test server: accepts and discards mail, as fast as it can."""

    name = "smtp-sink"

    def __init__(self, workdir: Path, *, port: int | None = None,
                 args: Sequence[str] = ()) -> None:
        super().__init__(workdir)
        self._fixed_port = port
        self.port = port or 0
        self.args = list(args)
        self._binary = find_binary("smtp-sink", POSTFIX_DIRS)

    def _configure(self) -> None:
        self.port = self._fixed_port or ports.free_port(self.host)

    def _argv(self) -> list[str]:
        # -u: drop root after binding; smtp-sink refuses to keep root privileges.
        return [self._binary, "-u", "nobody", *self.args, f"{self.host}:{self.port}",
                str(SINK_BACKLOG)]

    def _wait_ready(self, deadline: Deadline) -> None:
        wait_for_greeting(self.host, self.port, b"220", deadline, self._check_alive)

    def _after_stop(self) -> None:
        if self._fixed_port is None:
            ports.release([self.port])
