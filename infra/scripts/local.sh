#!/usr/bin/env bash
# README command 1: runs the product locally. Installs what it needs (moto in
# .venv), builds the five functions and the local stack, then runs it.
# Extra arguments go to the local-stack binary (see `--help`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

infra/scripts/bootstrap.sh
echo "==> building the functions and the local stack" >&2
cargo build --quiet --locked \
  -p integration-api -p oauth-callback -p scheduled-sync -p call-logger -p comment-sync \
  -p local-stack
exec target/debug/local-stack "$@"
