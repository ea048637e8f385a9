# Sourced by scripts/test and scripts/demo: create or reuse .venv and install
# the project into it (again only when pyproject.toml changed).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
python="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
extras="${CF_EXTRAS-test}"
spec="."
[ -n "$extras" ] && spec=".[$extras]"
stamp=".venv/.cf-installed-${extras:-base}"
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "Installing $spec into .venv ..." >&2
    .venv/bin/python -m pip install -qq --disable-pip-version-check --upgrade pip >&2
    .venv/bin/python -m pip install -qq --disable-pip-version-check -e "$spec" >&2
    echo "$want" > "$stamp"
fi
