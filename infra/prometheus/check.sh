#!/usr/bin/env bash
# Checks the Prometheus configuration, the rules and their unit tests (SPEC §8).
#   infra/prometheus/check.sh
# Exit codes: 0 all good, 1 a check failed, 2 promtool is not installed.
set -uo pipefail

cd "$(dirname "$0")"

if ! command -v promtool >/dev/null 2>&1; then
  cat >&2 <<'MSG'
check.sh: promtool not found.
Install it with the Prometheus package:
  Debian/Ubuntu:  sudo apt-get update && sudo apt-get install -y prometheus
  macOS:          brew install prometheus
  elsewhere:      the prometheus-<version>.<os>-<arch>.tar.gz from https://prometheus.io/download/
                  (promtool is in the archive), or: docker run --rm -v "$PWD":/p -w /p
                  --entrypoint promtool prom/prometheus test rules tests/*.test.yml
MSG
  exit 2
fi

status=0
step() {
  echo "==> $*"
  "$@" || { echo "FAILED: $*" >&2; status=1; }
  echo
}

promtool --version 2>&1 | head -n 1
echo

step promtool check config prometheus.yml
step promtool check rules rules/*.rules.yml
step promtool test rules tests/*.test.yml

# Every alert has severity, summary, description and a runbook_url whose anchor is a section of
# RUNBOOK.md ("## Runbook: <AlertName>" renders as #runbook-<alertname in lower case>).
echo "==> alert labels, annotations and runbook anchors"
alerts=$(sed -n 's/^[[:space:]]*-[[:space:]]*alert:[[:space:]]*\([A-Za-z0-9_]*\).*/\1/p' rules/*.rules.yml)
for file in rules/*.rules.yml; do
  for key in severity summary description runbook_url; do
    n_alerts=$(grep -cE '^[[:space:]]*-[[:space:]]*alert:' "$file")
    n_key=$(grep -cE "^[[:space:]]*${key}:" "$file")
    if [ "$n_alerts" != "$n_key" ]; then
      echo "FAILED: $file has $n_alerts alerts but $n_key '$key:' lines" >&2; status=1
    fi
  done
done
for alert in $alerts; do
  anchor="runbook-$(printf '%s' "$alert" | tr '[:upper:]' '[:lower:]')"
  if ! grep -q "runbook_url:[[:space:]]*infra/prometheus/RUNBOOK.md#${anchor}\$" rules/*.rules.yml; then
    echo "FAILED: $alert has no runbook_url ending in RUNBOOK.md#${anchor}" >&2; status=1
  elif ! grep -qx "## Runbook: ${alert}" RUNBOOK.md; then
    echo "FAILED: RUNBOOK.md has no section '## Runbook: ${alert}' (anchor #${anchor})" >&2; status=1
  else
    echo "  $alert -> RUNBOOK.md#${anchor}"
  fi
done
echo

if [ "$status" -eq 0 ]; then echo "check.sh: all checks passed"; else echo "check.sh: FAILED" >&2; fi
exit "$status"
