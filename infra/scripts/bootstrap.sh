#!/usr/bin/env bash
# Creates a project-local virtualenv from a pinned requirements file. Idempotent:
# does nothing when the venv already matches its requirements file.
#
#   bootstrap.sh          .venv: moto, cfn-lint and the SAM translator (the tests)
#   bootstrap.sh deploy   .venv-deploy: the SAM CLI and cargo-lambda (deploy.sh)
#
# Two venvs because the SAM CLI pins its own cfn-lint and translator versions.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
case "${1:-test}" in
  test) venv="$root/.venv"; req="$root/infra/requirements.txt" ;;
  deploy) venv="$root/.venv-deploy"; req="$root/infra/deploy-requirements.txt" ;;
  *) echo "usage: $0 [test|deploy]" >&2; exit 2 ;;
esac
stamp="$venv/.requirements.sha256"

want="$(sha256sum "$req" | cut -d' ' -f1)"
# Test processes may call this concurrently: one builds, the others wait.
exec 9>"$venv.lock"
flock 9
if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi

echo "bootstrap: creating $venv" >&2
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"
echo "$want" > "$stamp"
if [ "${1:-test}" = test ]; then
  echo "bootstrap: $("$venv/bin/python" -c 'import moto; print("moto", moto.__version__)'), $("$venv/bin/cfn-lint" --version)" >&2
else
  echo "bootstrap: $("$venv/bin/sam" --version), $("$venv/bin/cargo-lambda" lambda --version 2>/dev/null || "$venv/bin/cargo-lambda" --version)" >&2
fi
