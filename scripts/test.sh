#!/usr/bin/env bash
# README's test command: every test of the workspace, the browser tests and the
# schema-driven fuzzer included.
#
# The room board's tests drive a real headless Chromium through chromedriver, and the
# cluster tests route through a real HAProxy and publish to a real NATS JetStream. When
# /usr/bin/chromium, /usr/bin/chromedriver, /usr/sbin/haproxy or /usr/sbin/nats-server is
# missing, this installs Debian's `chromium`, `chromium-driver`, `haproxy` or
# `nats-server` package with apt-get (as root, or through sudo).
#
# The fuzz test (tests/fuzz.rs) runs Schemathesis (`st`, from PyPI) against the real
# binary. When INNKEEP_SCHEMATHESIS is not set and no Schemathesis 4 `st` is on the PATH,
# this installs schemathesis==$SCHEMATHESIS_VERSION from PyPI with pip into a virtualenv,
# target/schemathesis (once; later runs reuse it), and points INNKEEP_SCHEMATHESIS at its
# `st`.
#
# Then it runs `cargo test --workspace` with any arguments given to it, e.g.
#   scripts/test.sh              # everything
#   scripts/test.sh board        # tests whose name contains "board"
#   scripts/test.sh fuzz         # the schema-driven fuzzer
# Set INNKEEP_CHROMIUM / INNKEEP_CHROMEDRIVER / INNKEEP_HAPROXY / INNKEEP_NATS_SERVER /
# INNKEEP_SCHEMATHESIS to use binaries elsewhere (then nothing is installed).
set -euo pipefail
cd "$(dirname "$0")/.."

# The version the fuzz test's configuration (tests/schemathesis.toml) is written for.
SCHEMATHESIS_VERSION=4.32.5

chromium="${INNKEEP_CHROMIUM:-/usr/bin/chromium}"
chromedriver="${INNKEEP_CHROMEDRIVER:-/usr/bin/chromedriver}"
haproxy="${INNKEEP_HAPROXY:-/usr/sbin/haproxy}"
nats_server="${INNKEEP_NATS_SERVER:-/usr/sbin/nats-server}"

# Debian packages to install: each tool that is missing and not pointed elsewhere.
packages=()
if [[ ! -x "$chromium" || ! -x "$chromedriver" ]]; then
    if [[ -n "${INNKEEP_CHROMIUM:-}${INNKEEP_CHROMEDRIVER:-}" ]]; then
        echo "scripts/test.sh: $chromium or $chromedriver is missing (set by INNKEEP_CHROMIUM / INNKEEP_CHROMEDRIVER)" >&2
        exit 1
    fi
    packages+=(chromium chromium-driver)
fi
if [[ ! -x "$haproxy" ]]; then
    if [[ -n "${INNKEEP_HAPROXY:-}" ]]; then
        echo "scripts/test.sh: $haproxy is missing (set by INNKEEP_HAPROXY)" >&2
        exit 1
    fi
    packages+=(haproxy)
fi
if [[ ! -x "$nats_server" ]]; then
    if [[ -n "${INNKEEP_NATS_SERVER:-}" ]]; then
        echo "scripts/test.sh: $nats_server is missing (set by INNKEEP_NATS_SERVER)" >&2
        exit 1
    fi
    packages+=(nats-server)
fi
if [[ ${#packages[@]} -gt 0 ]]; then
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "scripts/test.sh: the tests need ${packages[*]}, and there is no apt-get to install them;" >&2
        echo "install them yourself and set INNKEEP_CHROMIUM, INNKEEP_CHROMEDRIVER, INNKEEP_HAPROXY and INNKEEP_NATS_SERVER to their paths" >&2
        exit 1
    fi
    as_root=()
    if [[ "$(id -u)" -ne 0 ]]; then
        if command -v sudo >/dev/null 2>&1; then
            as_root=(sudo)
        else
            echo "scripts/test.sh: installing ${packages[*]} needs root, and there is no sudo" >&2
            exit 1
        fi
    fi
    echo "scripts/test.sh: installing ${packages[*]} (for the room board's browser tests and the cluster tests)" >&2
    ${as_root[@]+"${as_root[@]}"} apt-get update
    ${as_root[@]+"${as_root[@]}"} env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y --no-install-recommends "${packages[@]}"
fi

if [[ -z "${INNKEEP_SCHEMATHESIS:-}" ]]; then
    # An `st` on the PATH will do if it is Schemathesis 4 (whose configuration format
    # tests/schemathesis.toml uses).
    if command -v st >/dev/null 2>&1 && st --version 2>/dev/null | grep -q "version 4\."; then
        INNKEEP_SCHEMATHESIS="$(command -v st)"
    else
        venv=target/schemathesis
        if [[ ! -x "$venv/bin/st" ]] || ! "$venv/bin/st" --version 2>/dev/null | grep -qF "$SCHEMATHESIS_VERSION"; then
            python=""
            for candidate in python3 python; do
                if command -v "$candidate" >/dev/null 2>&1; then
                    python="$candidate"
                    break
                fi
            done
            if [[ -z "$python" ]]; then
                echo "scripts/test.sh: the fuzz test needs Schemathesis, and there is no python3 to install it with;" >&2
                echo "install it yourself (pip install schemathesis==$SCHEMATHESIS_VERSION) and set INNKEEP_SCHEMATHESIS to its \`st\`" >&2
                exit 1
            fi
            echo "scripts/test.sh: installing schemathesis==$SCHEMATHESIS_VERSION from PyPI into $venv (for the fuzz test)" >&2
            rm -rf "$venv"
            "$python" -m venv "$venv"
            "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
                "schemathesis==$SCHEMATHESIS_VERSION"
        fi
        INNKEEP_SCHEMATHESIS="$PWD/$venv/bin/st"
    fi
    export INNKEEP_SCHEMATHESIS
fi

exec cargo test --workspace "$@"
