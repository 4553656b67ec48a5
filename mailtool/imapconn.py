"""Open an IMAP session for a resolved account endpoint: TLS as configured, then login.

Library level, above ``protocol/``: it joins the IMAP client with the password sources and
the cleartext-password rule of ``mailtool.endpoint``.
"""

from __future__ import annotations

from mailtool.endpoint import Endpoint, check_plaintext_auth, credentials
from mailtool.protocol.imap.client import IMAPClient
from mailtool.protocol.transcript import Transcript
from mailtool.protocol.transport import DEFAULT_TIMEOUT

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs start-up time
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


def connect_endpoint(
    endpoint: Endpoint,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    transcript: Transcript | None = None,
    login: bool = True,
    while_waiting: Callable[[], None] | None = None,
    **kwargs: Any,
) -> IMAPClient:
    """Connect to a resolved ``endpoint.Endpoint`` as its TLS mode says and log in.

    The cleartext check (``endpoint.check_plaintext_auth``) runs right before credentials
    are looked up and sent, on every path.

    ``while_waiting`` is run once, the first time the client waits for the server after
    the login was sent (the server is checking the password then): the caller's chance to
    do start-up work of its own, such as importing the modules it needs next, without
    making the server wait. It must not use the connection.
    """
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
