#!/usr/bin/env bash
# Creates the project-local virtualenv (.venv) with moto, cfn-lint and the SAM
# translator, pinned in infra/requirements.txt. Idempotent: does nothing when the
# venv already matches the requirements file.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="$root/.venv"
req="$root/infra/requirements.txt"
stamp="$venv/.requirements.sha256"

want="$(sha256sum "$req" | cut -d' ' -f1)"
# Test processes may call this concurrently: one builds, the others wait.
exec 9>"$root/.venv.lock"
flock 9
if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi

echo "bootstrap: creating $venv" >&2
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"
echo "$want" > "$stamp"
echo "bootstrap: $("$venv/bin/python" -c 'import moto; print("moto", moto.__version__)'), $("$venv/bin/cfn-lint" --version)" >&2
