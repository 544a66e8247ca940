#!/usr/bin/env bash
# Runs every campaign in ci/campaigns.txt; exits non-zero if any run was not valid.
set -uo pipefail
cd "$(dirname "$0")/.."
store="${1:-store-nightly}"
cargo build --release --workspace || exit 255
status=0
while read -r name args; do
  case "$name" in ''|'#'*) continue ;; esac
  # shellcheck disable=SC2086
  target/release/dcf-harness test --store "$store" --name "$name" $args
  code=$?
  echo "campaign $name: exit $code"
  [ "$code" -ne 0 ] && status=1
done < ci/campaigns.txt
exit "$status"
