#!/usr/bin/env bash
# Install what the browser test of the dashboard page needs: Debian's Chromium
# (the test drives /usr/bin/chromium through Playwright's Python package, which
# ci/venv.sh installs from the `test` extra; Playwright downloads no browser) and
# fonts so a screenshot shows readable text.
#
# Run as root. Idempotent: when chromium is installed and starts headless, a
# rerun installs nothing (~1 s).
set -euo pipefail

log() { echo "browser-up: $*" >&2; }

[ "$(id -u)" -eq 0 ] || { echo "browser-up: must run as root" >&2; exit 1; }
export PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH"

missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -d /usr/share/fonts/truetype/dejavu ] || missing+=(fonts-dejavu-core)
if [ "${#missing[@]}" -gt 0 ]; then
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# A smoke test with the flags the test uses: the browser must start and render.
profile="$(mktemp -d)"
trap 'rm -rf "$profile"' EXIT
if ! out="$(timeout 60 /usr/bin/chromium --headless --no-sandbox --disable-gpu \
    --disable-quic --no-first-run --disable-background-networking \
    --disable-component-update --disable-sync --user-data-dir="$profile" \
    --dump-dom 'data:text/html,<p id=ok>browser-up</p>' 2>/dev/null)"; then
    log "ERROR: /usr/bin/chromium does not start headless"
    exit 1
fi
case "$out" in
    *browser-up*) log "chromium ready: $(/usr/bin/chromium --version 2>/dev/null)" ;;
    *) log "ERROR: chromium started but rendered nothing"; exit 1 ;;
esac
