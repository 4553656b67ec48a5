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
    from typing import Any


def connect_endpoint(
    endpoint: Endpoint,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    transcript: Transcript | None = None,
    login: bool = True,
    **kwargs: Any,
) -> IMAPClient:
    """Connect to a resolved ``endpoint.Endpoint`` as its TLS mode says and log in.

    The cleartext check (``endpoint.check_plaintext_auth``) runs right before credentials
    are looked up and sent, on every path.
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
            client.authenticate(credentials(endpoint), wanted=endpoint.auth)
    except BaseException:
        client.close()
        raise
    return client
