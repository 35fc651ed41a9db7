#!/usr/bin/env bash
# Size and cold-start init of each function, built as `sam build` builds them
# (cargo-lambda, the workspace's release profile, one `--bin` at a time so that
# each gets only its own features), for x86_64 and arm64. Init is Lambda's Init
# Duration (process start to the first poll of the Runtime API), median of 5
# cold starts against the local Runtime API (infra/local-stack, `cold-start`).
# Not a test, and slow (release builds): BENCHMARKS.md records its output with
# the commit it measured.
#
#   infra/scripts/measure-lambda.sh [x86_64|arm64|all]     (default: all)
#
# arm64 binaries run here under qemu-user (installed with apt-get when missing):
# their sizes are exact, their init times are the emulator's, not Graviton's.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
which="${1:-all}"
functions=(integration-api oauth-callback scheduled-sync call-logger comment-sync)

infra/scripts/bootstrap.sh deploy   # cargo-lambda, and zig for the arm64 link
export PATH="$PWD/.venv-deploy/bin:$PATH"
cargo build --locked -p local-stack --bin cold-start
harness="${CARGO_TARGET_DIR:-target}/debug/cold-start"
bundle=/etc/ssl/certs/ca-certificates.crt   # provided.al2023's is /etc/pki/tls/certs/ca-bundle.crt

build() { # <arch> <cargo-lambda flag>
  local dir="${CARGO_TARGET_DIR:-target}/lambda-$1"
  for f in "${functions[@]}"; do
    echo "== cargo lambda build --release --bin $f $2" >&2
    cargo lambda build --release --locked --bin "$f" "$2" --lambda-dir "$dir" >&2
  done
  echo "$dir"
}

# A hello-world lambda_runtime function, outside the workspace, built with
# the workspace's release profile: the floor of this machine and harness, and
# (x86_64) what panic = "abort" costs: how the runtime reports a panic, and
# whether the process survives it, under each strategy.
probe="${CARGO_TARGET_DIR:-target}/panic-probe"
write_probe() {
  mkdir -p "$probe/src"
  cp Cargo.lock "$probe/Cargo.lock"
  { printf '[package]\nname = "hello-lambda"\nversion = "0.0.0"\nedition = "2024"\npublish = false\n\n[workspace]\n\n'
    printf '[dependencies]\nlambda_runtime = { version = "1.5", default-features = false, features = ["tracing"] }\n'
    printf 'tokio = { version = "1.47", features = ["macros", "rt-multi-thread"] }\nserde_json = "1"\n\n'
    sed -n '/^\[profile.release\]/,/^$/p' Cargo.toml; } > "$probe/Cargo.toml"
  cat > "$probe/src/main.rs" <<'RUST'
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    run(service_fn(|event: LambdaEvent<Value>| async move {
        if event.payload == "panic" {
            panic!("probe: a bug in the handler");
        }
        Ok::<_, Error>(event.payload)
    }))
    .await
}
RUST
}
write_probe

echo "measured on $(git rev-parse --short HEAD)$(git diff --quiet HEAD || echo ' (with uncommitted changes)'), $(nproc) cores, $(rustc --version)"

if [ "$which" = all ] || [ "$which" = x86_64 ]; then
  dir="$(build x86_64 --x86-64)"
  echo; echo "### x86_64 (native)"
  "$harness" --bin-dir "$dir" --runs 5 --cert-file "$bundle"
  echo; echo "scheduled-sync without SSL_CERT_FILE (the SDK scans the certificate directories)"
  "$harness" --bin-dir "$dir" --runs 5 --cert-file none scheduled-sync

  for strategy in unwind abort; do
    CARGO_PROFILE_RELEASE_PANIC="$strategy" cargo build --release --offline \
      --manifest-path "$probe/Cargo.toml" --target-dir "$probe/$strategy" >&2
  done
  echo; echo "The floor: hello-world (panic = \"unwind\")"
  "$harness" --bin-dir "$probe/unwind/release" --runs 5 --cert-file none hello-lambda
  for strategy in unwind abort; do
    echo; echo "A panic in the handler, panic = \"$strategy\" ($(stat -c %s "$probe/$strategy/release/hello-lambda") bytes)"
    "$harness" --bin-dir "$probe/$strategy/release" --runs 1 --cert-file none \
      --invoke '"panic"' --invoke '"next event"' hello-lambda | grep invoke
  done
fi

if [ "$which" = all ] || [ "$which" = arm64 ]; then
  if ! command -v qemu-aarch64 >/dev/null || [ ! -d /usr/aarch64-linux-gnu ]; then
    apt-get install -y --no-install-recommends qemu-user libc6-arm64-cross >&2
  fi
  dir="$(build arm64 --arm64)"
  qemu="qemu-aarch64 -L /usr/aarch64-linux-gnu"
  echo; echo "### arm64 (under qemu-user: init times are the emulator's)"
  "$harness" --bin-dir "$dir" --runs 5 --cert-file "$bundle" --wrapper "$qemu"
  cargo lambda build --release --arm64 --manifest-path "$probe/Cargo.toml" --lambda-dir "$probe/arm64" >&2
  echo; echo "The floor under qemu-user: hello-world (panic = \"unwind\")"
  "$harness" --bin-dir "$probe/arm64" --runs 5 --cert-file none --wrapper "$qemu" hello-lambda
fi
