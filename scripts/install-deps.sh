#!/bin/sh
# Install what the tests and the demo need: the real servers (Debian packages) and the
# Python package with its test extra. Idempotent; never starts the system-wide services.
set -eu
cd "$(dirname "$0")/.."

need=""
for pair in dovecot:dovecot-imapd /usr/sbin/postfix:postfix dnsmasq:dnsmasq; do
    cmd=${pair%%:*}
    pkg=${pair#*:}
    if ! command -v "$cmd" >/dev/null 2>&1 && [ ! -x "$cmd" ]; then need="$need $pkg"; fi
done
for pkg in dovecot-pop3d dovecot-lmtpd; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need="$need $pkg"
done
# `install-deps.sh --bench` also installs the peer tools the benchmarks compare against.
if [ "${1:-}" = "--bench" ]; then
    for pair in msmtp:msmtp swaks:swaks fetchmail:fetchmail getmail:getmail6 mbsync:isync offlineimap:offlineimap3; do
        command -v "${pair%%:*}" >/dev/null 2>&1 || need="$need ${pair#*:}"
    done
fi
if [ -n "$need" ]; then
    if [ "$(id -u)" != 0 ]; then SUDO=sudo; else SUDO=; fi
    # policy-rc.d keeps the package scripts from starting the system-wide daemons.
    rcd=/usr/sbin/policy-rc.d
    created=0
    if [ ! -e "$rcd" ]; then
        printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$rcd" >/dev/null
        $SUDO chmod 755 "$rcd"
        created=1
    fi
    echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq || true
    # shellcheck disable=SC2086
    $SUDO apt-get install -y -qq --no-install-recommends $need dovecot-core ssl-cert >/dev/null
    [ "$created" = 1 ] && $SUDO rm -f "$rcd"
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]' --config-settings editable_mode=compat
# Byte-compile the package: some environments set PYTHONDONTWRITEBYTECODE, which would make
# every CLI start (and every CLI test) compile mailtool from source again.
.venv/bin/python -m compileall -q mailtool >/dev/null
