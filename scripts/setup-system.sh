#!/usr/bin/env bash
# Debian packages the test suite needs beyond Python: chromium (the admin page's browser test),
# docker-compose v1 and prometheus' promtool (offline checks of the compose file, the Prometheus
# config and the dashboard's queries), openssl (throwaway certificates for the Kafka TLS tests),
# libmagic1 (python-magic, which AugLy imports: the screenshot-template tests).
# Installs only what is missing; needs root and apt.
set -euo pipefail
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
ldconfig -p 2>/dev/null | grep -q 'libmagic\.so\.1' || missing+=(libmagic1)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "warning: cannot install ${missing[*]} (not root or no apt); the tests that need them will say so" >&2
  exit 0
fi
echo "installing Debian packages: ${missing[*]} ..."
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The prometheus package starts a server through its service scripts where it can; the tests only
# need promtool.
if command -v systemctl >/dev/null 2>&1; then systemctl stop prometheus >/dev/null 2>&1 || true; fi
pkill -x prometheus >/dev/null 2>&1 || true
