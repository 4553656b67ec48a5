"""SASL client mechanisms shared by SMTP AUTH, POP3 AUTH and IMAP AUTHENTICATE.

Theory: a mechanism is a small state machine of challenge -> response steps over raw bytes;
the protocol clients do the base64 framing (``encode``/``decode``) and the round trips. The
mechanism to use is chosen from ``PREFERENCE``, an explicit strongest-first table, among
those the server offers and the credentials allow. Mechanisms: PLAIN (RFC 4616), LOGIN
(draft-murchison-sasl-login), CRAM-MD5 (RFC 2195), XOAUTH2 (Google/Microsoft),
OAUTHBEARER (RFC 7628).
"""

from __future__ import annotations

from mailtool.errors import AuthError, ProtocolError
from mailtool.record import record

# Not ``typing.TYPE_CHECKING``; binascii is imported by ``encode``/``decode``, at the login.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable


@record(frozen=True)
class Credentials:
    """What the user has: a password, an OAuth token, or both."""

    user: str
    password: str | None = None
    token: str | None = None
    authzid: str = ""

    def __repr__(self) -> str:  # never show secrets, even in a debugger or a traceback
        return f"Credentials(user={self.user!r}, password=***, token=***)"


class Mechanism:
    """One SASL exchange. ``initial`` may return the initial response (SASL-IR)."""

    name = ""
    needs_token = False

    def __init__(self, creds: Credentials, *, host: str = "", port: int = 0) -> None:
        self.creds = creds
        self.host = host
        self.port = port
        self.steps = 0

    def initial(self) -> bytes | None:
        """The initial client response, or None when the mechanism waits for a challenge."""
        return None

    def respond(self, challenge: bytes) -> bytes:
        """The response to a server challenge."""
        raise ProtocolError(f"unexpected {self.name} challenge from the server", step="AUTH")

    def _secret(self) -> str:
        value = self.creds.token if self.needs_token else self.creds.password
        if value is None:
            raise AuthError(f"no {'token' if self.needs_token else 'password'} for {self.name}")
        return value


class Plain(Mechanism):
    name = "PLAIN"

    def initial(self) -> bytes | None:
        return f"{self.creds.authzid}\0{self.creds.user}\0{self._secret()}".encode()

    def respond(self, challenge: bytes) -> bytes:
        # A server that does not take an initial response sends an empty challenge.
        if self.steps == 0 and not challenge:
            self.steps += 1
            return self.initial() or b""
        return super().respond(challenge)


class Login(Mechanism):
    name = "LOGIN"

    def respond(self, challenge: bytes) -> bytes:
        self.steps += 1
        if self.steps == 1:
            return self.creds.user.encode()
        if self.steps == 2:
            return self._secret().encode()
        return super().respond(challenge)


class CramMD5(Mechanism):
    name = "CRAM-MD5"

    def respond(self, challenge: bytes) -> bytes:
        self.steps += 1
        if self.steps > 1 or not challenge:
            return super().respond(challenge)
        import hashlib  # here: only CRAM-MD5 needs them, and they cost every start
        import hmac

        digest = hmac.new(self._secret().encode(), challenge, hashlib.md5).hexdigest()
        return f"{self.creds.user} {digest}".encode()


class XOAuth2(Mechanism):
    name = "XOAUTH2"
    needs_token = True

    def initial(self) -> bytes | None:
        return f"user={self.creds.user}\1auth=Bearer {self._secret()}\1\1".encode()

    def respond(self, challenge: bytes) -> bytes:
        # On failure the server sends a JSON error as a challenge; the reply is empty.
        self.steps += 1
        return b""


class OAuthBearer(Mechanism):
    name = "OAUTHBEARER"
    needs_token = True

    def initial(self) -> bytes | None:
        gs2 = f"n,a={self.creds.user},"
        host = f"host={self.host}\1" if self.host else ""
        port = f"port={self.port}\1" if self.port else ""
        return f"{gs2}\1{host}{port}auth=Bearer {self._secret()}\1\1".encode()

    def respond(self, challenge: bytes) -> bytes:
        # RFC 7628 section 3.2.3: answer an error challenge with a single ^A.
        self.steps += 1
        return b"\1"


#: Strongest first, on a cleartext connection (only ever with --allow-plaintext-auth).
#: Tokens beat passwords; CRAM-MD5 keeps the password off the wire; PLAIN beats LOGIN
#: (one round trip, standardised).
PREFERENCE: tuple[type[Mechanism], ...] = (OAuthBearer, XOAuth2, CramMD5, Plain, Login)
#: Over TLS the channel already hides the password, so PLAIN goes before CRAM-MD5: one
#: round trip (with SASL-IR) instead of two, and no hashing. CRAM-MD5 (RFC 2195) is also
#: the weaker choice for the server, which must keep a password equivalent to check it.
PREFERENCE_TLS: tuple[type[Mechanism], ...] = (OAuthBearer, XOAuth2, Plain, CramMD5, Login)
MECHANISMS: dict[str, type[Mechanism]] = {m.name: m for m in PREFERENCE}


def choose(
    offered: Iterable[str], creds: Credentials, *, wanted: str | None = None,
    tls_active: bool = False,
) -> type[Mechanism]:
    """Pick the mechanism to use.

    Args:
        offered: mechanism names the server advertises.
        wanted: a mechanism the user asked for (config ``auth`` or ``--auth``).
        tls_active: the connection is encrypted (``PREFERENCE_TLS`` applies).

    Raises:
        AuthError: nothing usable is offered (the message lists what was).
    """
    offered_set = {name.upper() for name in offered}
    if wanted:
        wanted = wanted.upper()
        if wanted not in MECHANISMS:
            raise AuthError(f"unsupported authentication mechanism {wanted}")
        if wanted not in offered_set:
            raise AuthError(
                f"server does not offer {wanted} (offers: {', '.join(sorted(offered_set)) or 'none'})"
            )
        return MECHANISMS[wanted]
    for mech in PREFERENCE_TLS if tls_active else PREFERENCE:
        if mech.name not in offered_set:
            continue
        if mech.needs_token and creds.token is None:
            continue
        if not mech.needs_token and creds.password is None:
            continue
        return mech
    raise AuthError(
        "no usable authentication mechanism: server offers "
        f"{', '.join(sorted(offered_set)) or 'none'}"
    )


def encode(data: bytes) -> bytes:
    """Base64 for the wire; an empty response is the empty string (RFC 4954 uses ``=``
    only for an empty *initial* response, which the clients handle).

    ``binascii`` (the C module under ``base64``): the ``base64`` module costs ~1 ms of imports
    at every login."""
    import binascii

    return binascii.b2a_base64(data, newline=False)


def decode(data: bytes) -> bytes:
    """Decode a base64 challenge.

    Raises:
        ProtocolError: the server sent something that is not base64.
    """
    import binascii

    try:
        return binascii.a2b_base64(data.strip(), strict_mode=True)
    except (binascii.Error, ValueError) as exc:
        raise ProtocolError("server sent a SASL challenge that is not base64", step="AUTH") from exc


def redacted(mechanism: str) -> bytes:
    """What the transcript shows instead of a client response."""
    return f"<{mechanism} response redacted>".encode()
