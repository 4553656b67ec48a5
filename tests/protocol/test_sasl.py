"""SASL mechanisms as pure challenge -> response steps, and the mechanism choice."""

from __future__ import annotations

import base64

import pytest

from mailtool.errors import AuthError, ProtocolError
from mailtool.protocol import sasl
from mailtool.protocol.sasl import Credentials

CREDS = Credentials(user="tim", password="tanstaaftanstaaf")


def test_plain_initial_response() -> None:
    mech = sasl.Plain(Credentials(user="u", password="p", authzid="a"))
    assert mech.initial() == b"a\0u\0p"


def test_login_steps() -> None:
    mech = sasl.Login(CREDS)
    assert mech.respond(b"Username:") == b"tim"
    assert mech.respond(b"Password:") == b"tanstaaftanstaaf"
    with pytest.raises(ProtocolError):
        mech.respond(b"again?")


def test_cram_md5_rfc2195_example() -> None:
    challenge = b"<1896.697170952@postoffice.reston.mci.net>"
    response = sasl.CramMD5(CREDS).respond(challenge)
    assert response == b"tim b913a602c7eda7a495b4e6e7334d3890"


def test_xoauth2_and_oauthbearer_format() -> None:
    creds = Credentials(user="me@example.org", token="ya29.tok")
    assert sasl.XOAuth2(creds).initial() == b"user=me@example.org\1auth=Bearer ya29.tok\1\1"
    bearer = sasl.OAuthBearer(creds, host="imap.example.org", port=993).initial()
    assert bearer == (
        b"n,a=me@example.org,\1host=imap.example.org\1port=993\1auth=Bearer ya29.tok\1\1"
    )
    assert sasl.OAuthBearer(creds).respond(b'{"status":"invalid_token"}') == b"\1"


@pytest.mark.parametrize(
    ("offered", "creds", "expected"),
    [
        (["PLAIN", "LOGIN"], CREDS, "PLAIN"),
        (["LOGIN", "PLAIN", "CRAM-MD5"], CREDS, "CRAM-MD5"),
        (["LOGIN"], CREDS, "LOGIN"),
        (["plain", "xoauth2"], CREDS, "PLAIN"),
        (["XOAUTH2", "PLAIN"], Credentials(user="u", token="t"), "XOAUTH2"),
        (["XOAUTH2", "OAUTHBEARER"], Credentials(user="u", token="t"), "OAUTHBEARER"),
    ],
)
def test_choose_strongest_usable(offered: list[str], creds: Credentials, expected: str) -> None:
    assert sasl.choose(offered, creds).name == expected


@pytest.mark.parametrize(
    ("offered", "tls", "expected"),
    [
        (["LOGIN", "PLAIN", "CRAM-MD5"], True, "PLAIN"),  # one round trip; TLS hides it
        (["LOGIN", "PLAIN", "CRAM-MD5"], False, "CRAM-MD5"),  # cleartext: keep it hashed
        (["LOGIN", "CRAM-MD5"], True, "CRAM-MD5"),
        (["LOGIN"], True, "LOGIN"),
    ],
)
def test_choose_prefers_plain_over_tls(offered: list[str], tls: bool, expected: str) -> None:
    assert sasl.choose(offered, CREDS, tls_active=tls).name == expected
    # A token still beats any password, encrypted or not.
    token = Credentials(user="u", token="t")
    assert sasl.choose([*offered, "XOAUTH2"], token, tls_active=tls).name == "XOAUTH2"


def test_choose_fails_clearly() -> None:
    with pytest.raises(AuthError, match="offers GSSAPI"):
        sasl.choose(["GSSAPI"], CREDS)
    with pytest.raises(AuthError, match="does not offer CRAM-MD5"):
        sasl.choose(["PLAIN"], CREDS, wanted="cram-md5")


def test_decode_rejects_garbage() -> None:
    assert sasl.decode(base64.b64encode(b"hi")) == b"hi"
    with pytest.raises(ProtocolError):
        sasl.decode(b"not base64!!")


def test_credentials_repr_hides_secrets() -> None:
    assert "tanstaaf" not in repr(CREDS)
