# Sourced by scripts/test, scripts/docs and scripts/demo: `cf_venv` creates or
# reuses a virtual environment and installs the project into it (editable)
# with exact versions from constraints/dev.txt, again only when pyproject.toml
# or constraints/ changed. Sourcing it sets up the main one, .venv.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

# cf_venv DIR PYTHON EXTRAS [tools] [floor]
#   DIR     the venv (created with PYTHON when missing or broken)
#   EXTRAS  the project's extras, comma-separated ("" for none)
#   tools   also install constraints/tools.txt (coverage, pdoc, hatchling)
#   floor   pin cf's dependencies to constraints/floor.txt instead
cf_venv() {
    local dir="$1" python="$2" extras="$3" tools="${4:-}" floor="${5:-}"
    local spec="." constraints="constraints/dev.txt"
    [ -n "$extras" ] && spec=".[$extras]"
    if [ -x "$dir/bin/python" ] && ! "$dir/bin/python" -c "" 2>/dev/null; then
        rm -rf "$dir"  # its interpreter is gone (a pyenv upgrade): start again
    fi
    if [ ! -x "$dir/bin/python" ]; then
        "$python" -m venv "$dir"
    fi
    if [ -n "$floor" ]; then
        constraints="$dir/constraints.txt"
        local names
        names="$(grep -v '^#' constraints/floor.txt | cut -d= -f1 | paste -sd'|')"
        { grep -v -i -E "^($names)==" constraints/dev.txt; cat constraints/floor.txt; } > "$constraints"
    fi
    local stamp="$dir/.cf-installed-${extras:-base}${tools:+-$tools}"
    local want
    want="$(cat pyproject.toml cf/__init__.py constraints/*.txt | sha256sum | cut -d' ' -f1)"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        return 0
    fi
    echo "Installing $spec${tools:+ and the tools} into $dir ..." >&2
    local pip=("$dir/bin/python" -m pip install -qq --disable-pip-version-check -c "$constraints")
    "${pip[@]}" --upgrade pip hatchling editables >&2
    # hatchling (with editables), pinned above, builds the editable install:
    # no build environment of unpinned versions.
    local more=()
    [ -n "$tools" ] && more=(-r constraints/tools.txt)
    "${pip[@]}" --no-build-isolation -e "$spec" "${more[@]}" >&2
    echo "$want" > "$stamp"
}

# The test extras and the tools, unless CF_EXTRAS says what to install
# (scripts/demo: CF_EXTRAS="", the package alone).
cf_tools=tools
[ -n "${CF_EXTRAS+set}" ] && cf_tools=""
cf_venv .venv "${PYTHON:-python3}" "${CF_EXTRAS-test,http2}" "$cf_tools"

