#!/usr/bin/env bash
# Runs the benchmarks (not part of the test command): optimised builds, real
# protocols (moto, the emulator as a separate process). Results go to stdout;
# BENCHMARKS.md records them.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
infra/scripts/bootstrap.sh
cargo build --release --locked -p sf-emulator
case "${1:-all}" in
  emulator) cargo bench --locked -p sf-emulator ;;
  sync) cargo bench --locked -p e2e --bench first_sync ;;
  calls) cargo bench --locked -p e2e --bench call_logging ;;
  cdc) cargo bench --locked -p e2e --bench cdc_sync ;;
  all)
    cargo bench --locked -p sf-emulator
    cargo bench --locked -p e2e --bench first_sync
    cargo bench --locked -p e2e --bench call_logging
    cargo bench --locked -p e2e --bench cdc_sync
    ;;
  *) echo "usage: $0 [emulator|sync|calls|cdc|all]" >&2; exit 2 ;;
esac
