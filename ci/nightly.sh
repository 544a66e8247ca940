#!/usr/bin/env bash
# Runs the nightly campaign (ci/nightly.toml) as the nightly workflow does:
# builds in release mode, then `dcf-harness campaign` within a budget.
# Usage: ci/nightly.sh [STORE] [BUDGET_MINUTES]. Exit status: the campaign's
# (0 every run met its expected verdict, 3 one did not, 130 interrupted,
# 64 bad file), 255 when the build failed.
set -uo pipefail
cd "$(dirname "$0")/.."
store="${1:-store-nightly}"
budget="${2:-150}"
cargo build --release --workspace || exit 255
exec target/release/dcf-harness campaign ci/nightly.toml --budget "$budget" --store "$store"
