#!/usr/bin/env bash
# Builds and deploys the stack (README, Deploy): `sam build` and `sam deploy`
# with one set of parameters, so that the binaries are built for the
# architecture the stack declares. Installs the pinned SAM CLI and cargo-lambda
# into .venv-deploy first. Needs a Rust toolchain, Python 3.11+ and AWS
# credentials (the usual chain: AWS_PROFILE, environment, SSO).
#
#   infra/scripts/deploy.sh [--config-env ENV] [--architecture arm64|x86_64] [--guided] [KEY=VALUE ...]
#   infra/scripts/deploy.sh --plan ...          print the commands, run nothing
#   infra/scripts/deploy.sh --outputs-env       export lines for MODJO_AWS=real
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
"$root/infra/scripts/bootstrap.sh" deploy
# cargo finds `cargo lambda` (and cargo-lambda finds zig) on PATH.
export PATH="$root/.venv-deploy/bin:$PATH"
exec "$root/.venv-deploy/bin/python" "$root/infra/scripts/deploy.py" "$@"
