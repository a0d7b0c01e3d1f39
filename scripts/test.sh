#!/usr/bin/env bash
# README's test command: every test of the workspace, the browser tests included.
#
# The room board's tests drive a real headless Chromium through chromedriver. When
# /usr/bin/chromium or /usr/bin/chromedriver is missing, this installs Debian's `chromium`
# and `chromium-driver` packages with apt-get (as root, or through sudo), then runs
# `cargo test --workspace` with any arguments given to it, e.g.
#   scripts/test.sh              # everything
#   scripts/test.sh board        # tests whose name contains "board"
# Set INNKEEP_CHROMIUM / INNKEEP_CHROMEDRIVER to use binaries elsewhere (then nothing is
# installed).
set -euo pipefail
cd "$(dirname "$0")/.."

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

exec cargo test --workspace "$@"
