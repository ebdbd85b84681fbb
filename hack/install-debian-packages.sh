#!/usr/bin/env bash
# Installs the Debian packages listed in hack/debian-packages.txt that are missing.
# `apt-get update` runs only when something has to be installed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
mapfile -t wanted < <(grep -Ev '^\s*(#|$)' "$here/debian-packages.txt")
missing=()
for package in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -eq 0 ]; then echo "==> Debian packages: all ${#wanted[@]} present"; exit 0; fi
echo "==> Debian packages: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
# The engines' packages start system-wide daemons; the tests and images run their own, so the
# ones just installed are stopped again (a machine that had them keeps them as they were).
for pair in memcached:memcached redis-server:redis-server mariadb-server:mariadb; do
  package=${pair%%:*} service=${pair##*:}
  if printf '%s\n' "${missing[@]}" | grep -qx "$package" && command -v systemctl >/dev/null; then
    systemctl disable --now "$service" >/dev/null 2>&1 || true
  fi
done
