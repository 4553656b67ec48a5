"""Envelope and header rewriting for system mail (cron, daemons, scripts).

Cron mails ``root`` as ``From: root (Cron Daemon)`` with ``To: root``; submission servers
refuse both ("need fully-qualified address", "not authorized to send as"). An account fixes
that with three settings::

    [accounts.work]
    from = "Ann Example <ann@example.org>"
    rewrite_from = true                   # or an address: "cron@example.org"
    aliases = { root = "ops@example.org", "www-data" = ["ann@example.org", "ops@example.org"] }

* ``aliases``: envelope recipients that are local names (``root``, ``root@localhost``,
  ``root@<this host>``) become the listed addresses. Keys are local parts or whole
  addresses; ``"*"`` catches every other local name. Only the envelope changes (the
  headers say what the sender wrote), as sendmail's aliases do.
* ``rewrite_from``: a local sender (envelope or ``From:``) becomes the account's ``from``
  address (or the address given), keeping the display name: ``root (Cron Daemon)`` becomes
  ``Cron Daemon <ann@example.org>``. A message without ``From:`` gets one.
* ``from``: the envelope sender when none is given (``-f``), as everywhere else.
"""

from __future__ import annotations

import os

from mailtool.errors import ConfigError

# Not ``typing.TYPE_CHECKING``: mailtool-sendmail does not import typing.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

#: Alias expansion depth (root -> admin -> ann@...); a longer chain is a loop.
MAX_ALIAS_DEPTH = 8
LOCAL_DOMAINS = ("localhost", "localhost.localdomain", "localdomain")


def local_domains() -> set[str]:
    names = set(LOCAL_DOMAINS)
    node = (os.uname().nodename or "").lower()
    if node:
        names.add(node)
        names.add(node.split(".", 1)[0])
    return names


def is_local(address: str) -> bool:
    """True for ``root``, ``root@localhost``, ``root@<this host>``: not deliverable as is."""
    if "@" not in address:
        return True
    return address.rsplit("@", 1)[1].strip().lower() in local_domains()


def _aliases(account: Any) -> dict[str, list[str]]:
    raw = account.get("aliases") if account is not None else None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"accounts.{account.name}.aliases must be a table "
                          '(aliases = { root = "ops@example.org" })')
    table: dict[str, list[str]] = {}
    for key, value in raw.items():
        values = [value] if isinstance(value, str) else value
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise ConfigError(f"accounts.{account.name}.aliases.{key} must be an address "
                              "or a list of addresses")
        targets: list[str] = []
        for item in values:
            targets += [x.strip() for x in item.split(",") if x.strip()]
        table[str(key).lower()] = targets
    return table


def expand_aliases(recipients: list[str], account: Any) -> list[str]:
    """Envelope recipients with local names replaced by their aliases (no duplicates).

    Raises:
        ConfigError: the aliases are malformed or loop.
    """
    table = _aliases(account)
    if not table:
        return recipients

    def lookup(address: str) -> list[str] | None:
        if not is_local(address):
            return table.get(address.lower())
        local = address.rsplit("@", 1)[0].lower() if "@" in address else address.lower()
        for key in (address.lower(), local):
            if key in table:
                return table[key]
        return table.get("*")

    out: list[str] = []

    def expand(address: str, depth: int) -> None:
        if depth > MAX_ALIAS_DEPTH:
            raise ConfigError(f"alias loop at {address!r} (more than {MAX_ALIAS_DEPTH} levels)")
        targets = lookup(address)
        if targets is None or targets == [address]:
            out.append(address)
            return
        for target in targets:
            expand(target, depth + 1)

    for rcpt in recipients:
        expand(rcpt, 0)
    from mailtool.compose import unique

    return unique(out)


def rewrite_address(account: Any) -> tuple[str, str] | None:
    """(display name, address) a local sender becomes, or None when not configured."""
    if account is None:
        return None
    setting = account.get("rewrite_from")
    if not setting:
        return None
    from mailtool.compose import parse_addresses

    source = setting if isinstance(setting, str) else account.get("from")
    if not source:
        raise ConfigError(f"accounts.{account.name}: rewrite_from needs an address, or "
                          "from set in the account")
    pairs = parse_addresses([str(source)])
    if len(pairs) != 1 or "@" not in pairs[0][1]:
        raise ConfigError(f"accounts.{account.name}: rewrite_from: bad address {source!r}")
    return pairs[0]


def rewrite_sender(sender: str, account: Any) -> str:
    """The envelope sender, a local one replaced when ``rewrite_from`` says so."""
    target = rewrite_address(account)
    if target is None or sender == "" or not is_local(sender):
        return sender
    return target[1]


def rewrite_from_header(source: Any, account: Any, full_name: str | None = None) -> bool:
    """Rewrite a local ``From:`` of ``source`` (keeping its display name), or add one.

    Returns True when the header changed.
    """
    target = rewrite_address(account)
    if target is None:
        return False
    from email.utils import formataddr

    from mailtool.compose import parse_addresses

    values = source.header_values("from")
    pairs = parse_addresses(values) if values else []
    if pairs and not all(is_local(addr) for _name, addr in pairs):
        return False
    name = (pairs[0][0] if pairs else "") or full_name or target[0]
    source.set_header("From", formataddr((name, target[1])) if name else target[1])
    return True


def add_missing_from(source: Any, sender: str, full_name: str | None) -> bool:
    """sendmail ``-F NAME``: a message without ``From:`` gets ``From: NAME <sender>``."""
    if source.header_values("from") or not sender:
        return False
    from email.utils import formataddr

    source.set_header("From", formataddr((full_name, sender)) if full_name else sender)
    return True
