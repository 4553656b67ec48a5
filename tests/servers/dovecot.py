"""A private Dovecot: IMAP, POP3 and LMTP on free loopback ports, users from a file.

Theory of operation: one ``dovecot -F -c <workdir>/dovecot.conf`` master in the
foreground, with its own base_dir, state_dir, instance name and log file, so it
never touches the system-wide instance. It listens on 127.0.0.1 (and ::1 when the
machine has it) for IMAP (STARTTLS), IMAPS, POP3 (STLS), POP3S and LMTP, and
offers an auth socket in its work dir that Postfix's smtpd uses for SASL. Each
user has a passwd-file of its own with a plain password (so CRAM-MD5 and APOP
work), which makes a user added at runtime visible at once. Mail is stored as
Maildir below ``<workdir>/mail/<user>/Maildir``, owned by the ``mail`` account:
Dovecot refuses to serve mail as root, and its login processes run as
``dovenull``. The work dir must therefore be reachable (o+x) by those accounts.

``deliver`` goes through LMTP, the same path Postfix uses; ``deliver_many``
writes Maildir files directly (thousands per second) for tests that need big
mailboxes.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import secrets
import smtplib
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from . import ports
from ._process import (
    Deadline,
    Server,
    ServerError,
    find_binary,
    wait_for_greeting,
    write_text,
)
from .ca import TestCA

MAIL_DOMAIN = "mail.test"
# Account that owns the mailboxes: Debian's base "mail" user exists on every install.
MAIL_USER = "mail"
MAIL_GROUP = "mail"
LOGIN_USER = "dovenull"
INTERNAL_USER = "dovecot"
# Users every instance starts with; tests normally use a fresh user each (mail_user).
DEFAULT_USERS = (("alice", "alice-password"), ("bob", "bob-password"))
# Per-user-and-IP connection limit: all clients come from 127.0.0.1, tests open many.
MAX_USERIP_CONNECTIONS = 200
# Loopback address where Dovecot refuses cleartext authentication without TLS.
STRICT_HOST = "127.0.0.2"
# Network timeout for the harness's own LMTP deliveries.
LMTP_TIMEOUT = 30.0


# Login names: what a local part and a file name can both hold without quoting.
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*(\.[a-z0-9_-]+)*")


@dataclass(frozen=True)
class User:
    """A mailbox account on the private Dovecot."""

    name: str  # login name (the address works too: the domain part is dropped)
    password: str
    address: str
    maildir: Path


def _ids() -> tuple[int, int]:
    return pwd.getpwnam(MAIL_USER).pw_uid, grp.getgrnam(MAIL_GROUP).gr_gid


class Dovecot(Server):
    """A private Dovecot instance; see the module docstring."""

    name = "dovecot"
    # Dovecot's master waits about a second for its log process after SIGTERM;
    # signalling the whole tree at once stops it in milliseconds.
    stop_whole_tree = True

    def __init__(self, workdir: Path, ca: TestCA, *, domain: str = MAIL_DOMAIN,
                 users: Iterable[tuple[str, str]] = DEFAULT_USERS) -> None:
        super().__init__(workdir)
        self.ca = ca
        self.domain = domain
        self.conf_path = self.workdir / "dovecot.conf"
        # One passwd-file per user: a lookup of a path never seen before stats it at
        # once, while Dovecot re-stats a known file at most once a second; a missing
        # file means "unknown user" (550 5.1.1 over LMTP).
        self.users_dir = self.workdir / "users.d"
        self.mail_root = self.workdir / "mail"
        self.run_dir = self.workdir / "run"
        self.auth_dir = self.workdir / "auth"
        # Postfix's smtpd (user postfix) connects here for SASL AUTH.
        self.auth_socket = self.auth_dir / "auth-postfix"
        self.imap_port = self.imaps_port = self.pop3_port = self.pop3s_port = 0
        self.lmtp_port = 0
        # Same ports on this address refuse cleartext logins before TLS (LOGINDISABLED,
        # no POP3 USER/PASS): 127.0.0.1 counts as "secured" to Dovecot, 127.0.0.2 does not.
        self.strict_host = STRICT_HOST
        self.listen = [self.host]
        self.users: dict[str, User] = {}
        self._users_lock = threading.Lock()
        self._deliveries = 0
        self._instance = f"mailtool-test-{secrets.token_hex(4)}"
        self._binary = find_binary("dovecot")
        self._user_callbacks: list[Callable[[User], None]] = []
        for name, password in users:
            self.add_user(name, password)

    # -- users ---------------------------------------------------------------------
    def add_user(self, name: str | None = None, password: str | None = None) -> User:
        """Add a user (random name/password by default); works while running.

        Each user has a passwd-file of its own (``users.d/<name>``), so a new user
        is visible to the very next login or LMTP delivery.
        """
        if name is None:
            name = f"user-{secrets.token_hex(4)}"
        if password is None:
            password = secrets.token_urlsafe(12)
        if not _NAME.fullmatch(name):
            raise ValueError(f"unusable user name {name!r}: use a-z, 0-9, '.', '_', '-'")
        if any(c in password for c in ":\r\n"):
            raise ValueError("password must not contain ':' or line breaks")
        with self._users_lock:
            if name in self.users:
                raise ValueError(f"user {name!r} exists")
            user = User(name, password, f"{name}@{self.domain}",
                        self.mail_root / name / "Maildir")
            self.users[name] = user
            self._write_user(user)
        for callback in list(self._user_callbacks):
            callback(user)
        return user

    def on_user_added(self, callback: Callable[[User], None]) -> None:
        """Call ``callback(user)`` after each add_user (Postfix keeps its recipient map)."""
        self._user_callbacks.append(callback)

    def _write_user(self, user: User) -> None:
        if not self.users_dir.is_dir():
            self.users_dir.mkdir(parents=True)
            os.chmod(self.users_dir, 0o755)
        # Readable by the auth process, which runs as the dovecot account.
        write_text(self.users_dir / user.name, f"{user.name}:{{PLAIN}}{user.password}::::::\n",
                   0o644)

    # -- mail ----------------------------------------------------------------------
    def deliver(self, user: User | str, raw: bytes, *, sender: str = "sender@example.test"
                ) -> None:
        """Deliver one message to the user's INBOX through LMTP (what Postfix does)."""
        self.deliver_lmtp(user, [raw], sender=sender)

    def deliver_lmtp(self, user: User | str, messages: Iterable[bytes], *,
                     sender: str = "sender@example.test") -> int:
        """Deliver messages over one LMTP connection; return how many were delivered."""
        address = self._user(user).address
        count = 0
        with smtplib.LMTP(self.host, self.lmtp_port, timeout=LMTP_TIMEOUT) as lmtp:
            lmtp.ehlo("harness.mail.test")
            for raw in messages:
                lmtp.sendmail(sender, [address], raw)
                count += 1
        return count

    def deliver_many(self, user: User | str, messages: Iterable[bytes], *,
                     mailbox: str = "INBOX", seen: bool = False) -> int:
        """Write messages straight into the user's Maildir (fast); return the count.

        Files are written to ``tmp/`` and renamed into ``new/`` (or ``cur/`` with
        the Seen flag), owned by the mail account, with LF line endings as
        Dovecot stores them. Dovecot picks them up on the next mailbox sync.
        ``mailbox`` other than INBOX is a Maildir++ folder (ASCII names, '/'
        separates levels) created when missing.
        """
        folder = self._folder(self._user(user), mailbox)
        uid, gid = _ids()
        host = socket.gethostname().replace("/", "_").replace(":", "_")
        count = 0
        now = int(time.time())
        for raw in messages:
            body = raw.replace(b"\r\n", b"\n")
            virtual_size = len(body) + body.count(b"\n")
            self._deliveries += 1
            base = f"{now}.M{self._deliveries}P{os.getpid()}.{host},S={len(body)},W={virtual_size}"
            tmp = folder / "tmp" / base
            with open(tmp, "wb") as handle:
                handle.write(body)
            os.chown(tmp, uid, gid)
            if seen:
                os.rename(tmp, folder / "cur" / f"{base}:2,S")
            else:
                os.rename(tmp, folder / "new" / base)
            count += 1
        return count

    def _user(self, user: User | str) -> User:
        if isinstance(user, User):
            return user
        name = user.split("@", 1)[0]
        try:
            return self.users[name]
        except KeyError:
            raise ValueError(f"no such user {user!r}") from None

    def _folder(self, user: User, mailbox: str) -> Path:
        uid, gid = _ids()
        home = user.maildir.parent
        if not home.exists():
            home.mkdir(mode=0o700)
            os.chown(home, uid, gid)
        dirs = [user.maildir]
        if mailbox.upper() != "INBOX":
            if not mailbox.isascii() or any(c in mailbox for c in ".%*\r\n") or not mailbox:
                raise ValueError(f"deliver_many supports plain ASCII folder names, not {mailbox!r}")
            dirs.append(user.maildir / ("." + mailbox.replace("/", ".")))
        for directory in dirs:
            for sub in ("", "cur", "new", "tmp"):
                path = directory / sub
                if not path.exists():
                    path.mkdir(mode=0o700)
                    os.chown(path, uid, gid)
        folder = dirs[-1]
        if folder is not user.maildir:
            marker = folder / "maildirfolder"
            if not marker.exists():
                marker.touch()
                os.chown(marker, uid, gid)
        return folder

    def messages(self, user: User | str, mailbox: str = "INBOX") -> list[Path]:
        """Files of the messages in a user's Maildir folder (new and cur), oldest first."""
        maildir = self._user(user).maildir
        folder = maildir if mailbox.upper() == "INBOX" else maildir / ("." + mailbox.replace("/", "."))
        files = [p for sub in ("new", "cur") if (folder / sub).is_dir()
                 for p in (folder / sub).iterdir()]
        return sorted(files, key=lambda p: (p.stat().st_mtime, p.name))

    # -- Server hooks --------------------------------------------------------------
    def _configure(self) -> None:
        if os.geteuid() != 0:
            raise ServerError("the private Dovecot needs root (it runs mail as 'mail', "
                              "logins as 'dovenull')")
        uid, gid = _ids()
        os.chmod(self.workdir, 0o711)
        for directory in (self.mail_root,):
            directory.mkdir(exist_ok=True)
            os.chown(directory, uid, gid)
            os.chmod(directory, 0o755)
        self.auth_dir.mkdir(exist_ok=True)
        os.chmod(self.auth_dir, 0o755)
        (self.workdir / "state").mkdir(exist_ok=True)
        # Also on ::1 when the machine has it, so clients that resolve "localhost"
        # to ::1 first find the same server there.
        self.listen = [self.host, self.strict_host,
                       *([ports.HOST6] if ports.ipv6_loopback() else [])]
        self.imap_port, self.imaps_port, self.pop3_port, self.pop3s_port, self.lmtp_port = (
            ports.free_ports(5, self.host, also=tuple(self.listen[1:])))
        for user in self.users.values():
            self._write_user(user)
        write_text(self.conf_path, self._config_text(uid), 0o644)

    def _config_text(self, mail_uid: int) -> str:
        w = self.workdir
        return f"""\
# Private Dovecot for the mailtool tests (written by tests/servers/dovecot.py).
instance_name = {self._instance}
base_dir = {self.run_dir}
state_dir = {w}/state
listen = {", ".join(self.listen)}
protocols = imap pop3 lmtp
log_path = {self.log_path}
info_log_path = {self.log_path}
debug_log_path = {self.log_path}
auth_verbose = yes
log_timestamp = "%Y-%m-%d %H:%M:%S "
login_greeting = Dovecot (mailtool test) ready.
hostname = imap.{self.domain}
default_internal_user = {INTERNAL_USER}
default_login_user = {LOGIN_USER}
first_valid_uid = {mail_uid}
first_valid_gid = 1
shutdown_clients = yes

ssl = yes
ssl_cert = <{self.ca.server.cert_file}
ssl_key = <{self.ca.server.key_file}
ssl_min_protocol = TLSv1.2
disable_plaintext_auth = no
auth_mechanisms = plain login cram-md5 apop
auth_username_format = %Ln
# Wrong-password tests should not wait the default 2 s.
auth_failure_delay = 0
auth_cache_size = 0

passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%n {self.users_dir}/%n
}}
userdb {{
  driver = passwd-file
  args = username_format=%n {self.users_dir}/%n
  default_fields = uid={MAIL_USER} gid={MAIL_GROUP} home={self.mail_root}/%n
}}

mail_location = maildir:~/Maildir
# zlib + imap_zlib give IMAP COMPRESS=DEFLATE (RFC 4978); stored mail stays plain.
mail_plugins = $mail_plugins zlib
namespace inbox {{
  inbox = yes
  separator = /
  mailbox Drafts {{
    special_use = \\Drafts
    auto = subscribe
  }}
  mailbox Sent {{
    special_use = \\Sent
    auto = subscribe
  }}
  mailbox Trash {{
    special_use = \\Trash
    auto = subscribe
  }}
  mailbox Junk {{
    special_use = \\Junk
    auto = create
  }}
  mailbox Archive {{
    special_use = \\Archive
    auto = create
  }}
}}

protocol imap {{
  mail_plugins = $mail_plugins imap_zlib
  mail_max_userip_connections = {MAX_USERIP_CONNECTIONS}
}}
protocol pop3 {{
  mail_max_userip_connections = {MAX_USERIP_CONNECTIONS}
  pop3_uidl_format = %08Xu%08Xv
}}
protocol lmtp {{
  postmaster_address = postmaster@{self.domain}
}}

service imap-login {{
  inet_listener imap {{
    port = {self.imap_port}
  }}
  inet_listener imaps {{
    port = {self.imaps_port}
    ssl = yes
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    port = {self.pop3_port}
  }}
  inet_listener pop3s {{
    port = {self.pop3s_port}
    ssl = yes
  }}
}}
service lmtp {{
  inet_listener lmtp {{
    address = {", ".join(self.listen)}
    port = {self.lmtp_port}
  }}
}}
local {self.strict_host} {{
  disable_plaintext_auth = yes
}}

# Auth penalty (2, 4, 8, 15 s delays after failed logins from one IP) is off when
# the auth process cannot reach anvil's penalty socket: wrong-password tests stay fast.
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service auth {{
  unix_listener {self.auth_socket} {{
    mode = 0666
  }}
}}
"""

    def _argv(self) -> list[str]:
        return [self._binary, "-F", "-c", str(self.conf_path)]

    def _wait_ready(self, deadline: Deadline) -> None:
        checks = [
            (self.imap_port, b"* OK", None),
            (self.pop3_port, b"+OK", None),
            (self.lmtp_port, b"220", None),
            (self.imaps_port, b"* OK", self.ca.client_context()),
            (self.pop3s_port, b"+OK", self.ca.client_context()),
        ]
        for port, expect, context in checks:
            wait_for_greeting(self.host, port, expect, deadline, self._check_alive,
                              context=context)
        while not self.auth_socket.exists():
            self._check_alive()
            if deadline.expired():
                raise ServerError(f"auth socket {self.auth_socket} did not appear")
            time.sleep(0.02)

    def _after_stop(self) -> None:
        ports.release([self.imap_port, self.imaps_port, self.pop3_port, self.pop3s_port,
                       self.lmtp_port])
