#!/usr/bin/env bash
# The project's test command (README): installs what the tests need, checks
# formatting and lints, then runs every test. Exits non-zero on any failure and
# ends with the test runner's own summary.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

step() { printf '\n==> %s\n' "$*" >&2; }

step "Python tools (moto, cfn-lint, SAM translator) in .venv"
infra/scripts/bootstrap.sh

# The settings page's browser test drives Debian's Chromium through chromedriver.
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  step "Chromium and chromedriver (Debian packages)"
  if [ "$(id -u)" -eq 0 ]; then apt=(apt-get); else apt=(sudo apt-get); fi
  DEBIAN_FRONTEND=noninteractive "${apt[@]}" update -qq
  DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y -qq chromium chromium-driver >/dev/null
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --profile "${NEXTEST_PROFILE:-default}" "$@"
else
  cargo test --workspace --locked "$@"
fi
