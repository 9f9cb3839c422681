#!/usr/bin/env bash
# Set up everything this repository needs on a fresh machine, idempotently:
#   - FFmpeg's shared libraries through apt (torchcodec decodes with them), when missing;
#   - a virtual environment in .venv (reused when present);
#   - the package and its pinned dependencies (constraints.txt) from PyPI with plain pip;
#   - with --dev: the test extras, the reference DEMUCS (denoiser, installed without its deps) and Debian's
#     chromium for the browser tests (apt, when missing).
# Usage: bash scripts/bootstrap.sh [--dev]
set -euo pipefail
cd "$(dirname "$0")/.."
dev=0
[ "${1:-}" = "--dev" ] && dev=1
log() { echo "[bootstrap] $*" >&2; }

# apt_install PACKAGE WHAT CONSEQUENCE: install a Debian package, or say what fails without it
apt_install() {
    if ! command -v apt-get >/dev/null 2>&1; then
        log "WARNING: no apt-get; install $1 yourself ($2)"
        return
    fi
    log "installing $1 ($2, apt)"
    local sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq >/dev/null || log "apt-get update failed; trying the install anyway"
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "$1" >/dev/null \
        || log "WARNING: $1 could not be installed: $3"
}

if ! ldconfig -p 2>/dev/null | grep -q 'libavcodec\.so'; then
    apt_install ffmpeg "FFmpeg's shared libraries, for torchcodec decoding" \
        "decoding through torchcodec will fail, soundfile I/O still works"
fi

# the browser tests (tests/test_demo.py) drive Debian's chromium through Playwright: Playwright's own
# browser download is not used
if [ "$dev" = 1 ] && ! command -v chromium >/dev/null 2>&1; then
    apt_install chromium "for the browser tests" "tests/test_demo.py will fail under CI, skip elsewhere"
fi

PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    log "creating .venv"
    "$PY" -m venv .venv
fi
extras="."
[ "$dev" = 1 ] && extras=".[test]"
stamp=".venv/.adaslim-installed-$dev-$(cat pyproject.toml constraints.txt | sha1sum | cut -c1-12)"
if [ ! -f "$stamp" ]; then
    log "installing $extras with the pinned set in constraints.txt (first run takes a few minutes)"
    .venv/bin/pip install -q -c constraints.txt -e "$extras"
    if [ "$dev" = 1 ]; then
        .venv/bin/pip install -q --no-deps denoiser==0.1.5
    fi
    touch "$stamp"
else
    log "dependencies already installed (.venv)"
fi
