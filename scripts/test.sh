#!/usr/bin/env bash
# README's test command: every test of the workspace, the browser tests and the
# schema-driven fuzzer included.
#
# The room board's tests drive a real headless Chromium through chromedriver. When
# /usr/bin/chromium or /usr/bin/chromedriver is missing, this installs Debian's `chromium`
# and `chromium-driver` packages with apt-get (as root, or through sudo).
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
# Set INNKEEP_CHROMIUM / INNKEEP_CHROMEDRIVER / INNKEEP_SCHEMATHESIS to use binaries
# elsewhere (then nothing is installed).
set -euo pipefail
cd "$(dirname "$0")/.."

# The version the fuzz test's configuration (tests/schemathesis.toml) is written for.
SCHEMATHESIS_VERSION=4.32.5

chromium="${INNKEEP_CHROMIUM:-/usr/bin/chromium}"
chromedriver="${INNKEEP_CHROMEDRIVER:-/usr/bin/chromedriver}"

if [[ ! -x "$chromium" || ! -x "$chromedriver" ]]; then
    if [[ -n "${INNKEEP_CHROMIUM:-}${INNKEEP_CHROMEDRIVER:-}" ]]; then
        echo "scripts/test.sh: $chromium or $chromedriver is missing (set by INNKEEP_CHROMIUM / INNKEEP_CHROMEDRIVER)" >&2
        exit 1
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "scripts/test.sh: the browser tests need chromium and chromedriver, and there is no apt-get to install them;" >&2
        echo "install them yourself and set INNKEEP_CHROMIUM and INNKEEP_CHROMEDRIVER to their paths" >&2
        exit 1
    fi
    as_root=()
    if [[ "$(id -u)" -ne 0 ]]; then
        if command -v sudo >/dev/null 2>&1; then
            as_root=(sudo)
        else
            echo "scripts/test.sh: installing chromium and chromium-driver needs root, and there is no sudo" >&2
            exit 1
        fi
    fi
    echo "scripts/test.sh: installing chromium and chromium-driver (for the room board's browser tests)" >&2
    ${as_root[@]+"${as_root[@]}"} apt-get update
    ${as_root[@]+"${as_root[@]}"} env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y --no-install-recommends chromium chromium-driver
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
