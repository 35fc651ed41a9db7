#!/usr/bin/env bash
# README command 1: the product on this machine. Installs what it needs (moto in
# .venv), builds the five functions and the local stack, starts moto, the
# Salesforce emulator with the demo org, the functions behind a local Lambda
# Runtime API, the HTTP API, the schedule and the queue pollers, then plays the
# demo story and prints what landed in Salesforce and in Modjo's store.
#
#   infra/scripts/local.sh            the demo, then stop
#   infra/scripts/local.sh --serve    keep the stack running (add --demo to play it first)
#   infra/scripts/local.sh --help     every option
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

infra/scripts/bootstrap.sh
echo "==> building the functions and the local stack" >&2
# The same build as the local-stack test, so either reuses the other's work.
cargo build --quiet --locked --workspace --bins
exec "${CARGO_TARGET_DIR:-target}/debug/local-stack" "$@"
