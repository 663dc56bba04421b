#!/usr/bin/env bash
# Make sure the browser the dashboard's tests drive (tests/browser) is installed:
# Debian's chromium, installed as root via apt when missing, as services.sh
# installs Redis and RabbitMQ. Playwright drives it by its path and never
# downloads a browser of its own. Still missing at the end: an error when
# CI=true, a warning otherwise (the browser tests then skip).
set -euo pipefail

browser=${HURTLE_TEST_CHROMIUM:-/usr/bin/chromium}
[[ -x $browser ]] && exit 0
if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    echo "browser.sh: installing chromium" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null || true
fi
[[ -x $browser ]] && exit 0
if [[ ${CI:-} == true ]]; then
    echo "browser.sh: error: no browser at $browser (required in CI)" >&2
    exit 1
fi
echo "browser.sh: warning: no browser at $browser; the browser tests will be skipped" >&2
