"""``diagnose pop3s:// imaps:// imap://`` against the real Dovecot: right and wrong passwords."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.helpers import run_cli

pytestmark = pytest.mark.timeout(90)


def check(dovecot: Any, test_ca: Any, url: str, user: Any, password: str,
          expect: int) -> dict[str, Any]:
    r = run_cli("diagnose", "--json", url, "--user", user.name, "--ca-file",
                str(test_ca.ca_file), env={"MAILTOOL_PASSWORD": password}, expect=expect)
    doc: dict[str, Any] = json.loads(r.stdout)
    assert password not in r.stdout and password not in r.stderr
    return doc


def by_check(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["check"]: f for s in doc["sections"] for f in s["findings"]}


@pytest.mark.parametrize("scheme", ["imaps", "imap", "pop3s"])
def test_right_and_wrong_password(dovecot: Any, test_ca: Any, mail_user: Any,
                                  scheme: str) -> None:
    port = {"imaps": dovecot.imaps_port, "imap": dovecot.imap_port,
            "pop3s": dovecot.pop3s_port}[scheme]
    url = f"{scheme}://localhost:{port}"
    good = by_check(check(dovecot, test_ca, url, mail_user, mail_user.password, expect=0))
    assert good["login"]["status"] == "ok"
    assert good["tls"]["data"]["version"].startswith("TLSv1.")
    assert good["certificate"]["status"] == "ok"
    assert good["auth"]["detail"]
    bad = by_check(check(dovecot, test_ca, url, mail_user, "wrong-" + mail_user.password,
                         expect=77))
    assert bad["login"]["status"] == "failure" and bad["login"]["exit_code"] == 77
    assert bad["login"]["next_step"]
