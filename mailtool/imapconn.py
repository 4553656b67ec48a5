"""Open an IMAP session for a resolved account endpoint: TLS as configured, then login.

Library level, above ``protocol/``: it joins the IMAP client with the password sources and
the cleartext-password rule of ``mailtool.endpoint``.
"""

from __future__ import annotations

from mailtool.endpoint import Endpoint, check_plaintext_auth, credentials
from mailtool.protocol.transport import DEFAULT_TIMEOUT, connect_for_mode

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs start-up time
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from mailtool.protocol.imap.client import IMAPClient
    from mailtool.protocol.transcript import Transcript


def connect_endpoint(
    endpoint: Endpoint,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    transcript: Transcript | None = None,
    login: bool = True,
    while_connecting: Callable[[], None] | None = None,
    while_waiting: Callable[[], None] | None = None,
    **kwargs: Any,
) -> IMAPClient:
    """Connect to a resolved ``endpoint.Endpoint`` as its TLS mode says and log in.

    The cleartext check (``endpoint.check_plaintext_auth``) runs right before credentials
    are looked up and sent, on every path.

    Two chances to do start-up work (such as imports) while the server works, each run
    once and never using the connection: ``while_connecting`` while the server answers
    the TLS handshake (or prepares its greeting); ``while_waiting`` the first time the
    client waits after the login was sent (the server is checking the password then).
    The IMAP client itself is imported only after the handshake has started.
    """
    if while_connecting is not None:
        kwargs["transport"] = connect_for_mode(
            endpoint.host, endpoint.port, endpoint.tls_mode, endpoint.tls, timeout=timeout,
            transcript=transcript, while_waiting=while_connecting)
    from mailtool.protocol.imap.client import IMAPClient

    client = IMAPClient.connect(
        endpoint.host,
        endpoint.port,
        tls_mode=endpoint.tls_mode,
        tls=endpoint.tls,
        timeout=timeout,
        transcript=transcript,
        **kwargs,
    )
    try:
        if login and not client.authenticated:
            check_plaintext_auth(endpoint, client.tls_active)
            creds = credentials(endpoint)
            if while_waiting is not None:
                _run_once_on_wait(client, while_waiting)
            client.authenticate(creds, wanted=endpoint.auth)
    except BaseException:
        client.close()
        raise
    return client


def _run_once_on_wait(client: IMAPClient, work: Callable[[], None]) -> None:
    transport = client.transport

    def once() -> None:
        transport.on_wait = None
        work()

    transport.on_wait = once
