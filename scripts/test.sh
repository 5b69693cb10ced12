#!/usr/bin/env bash
# Set up everything the tests need on a fresh Debian machine, then run the whole suite.
# This is the README's test command; CI (.ci/run) runs exactly this script.
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore DEBIAN_FRONTEND=noninteractive
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v sipp >/dev/null 2>&1 || need+=(sip-tester)
command -v baresip >/dev/null 2>&1 || need+=(baresip-core)  # a second SIP user agent
command -v prometheus >/dev/null 2>&1 || need+=(prometheus)   # scrapes a live run's /metrics
command -v espeak-ng >/dev/null 2>&1 || need+=(espeak-ng)     # speech for speak: and --voice speech
if [ "${#need[@]}" -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# A distribution's own Python refuses pip installs (PEP 668): use a venv there, ./.venv
if python3 -c 'import os, sys, sysconfig; sys.exit(not (sys.prefix == sys.base_prefix and os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED"))))'; then
    [ -x .venv/bin/python3 ] || python3 -m venv .venv
    export PATH="$PWD/.venv/bin:$PATH"
fi
python3 -m pip install -q -e '.[test,webrtc]'
# the layers and the no-circle rule (pyproject.toml [tool.importlinter]) before any test
python3 -c "from importlinter.cli import lint_imports_command as c; c.main(['--no-cache'], prog_name='lint-imports')"
export RTFLEET_REQUIRE_BROWSER=1 RTFLEET_REQUIRE_SIPP=1 RTFLEET_REQUIRE_AGENTS=1 RTFLEET_REQUIRE_BARESIP=1 RTFLEET_REQUIRE_PROMETHEUS=1 RTFLEET_REQUIRE_ESPEAK=1
exec python3 -m pytest -q "$@"
