# Sourced by scripts/test: install the system programs that the tests start
# (nginx, tinyproxy, redis-server, microsocks) when one of them is missing.
#
# With every program present this only looks them up on PATH (no apt call).
# Otherwise it runs `apt-get install -y --no-install-recommends` quietly, as root
# or through `sudo -n`, and `apt-get update` only when the install failed for a
# missing or stale package index. On success it exports CF_REQUIRE_PROGRAMS=1:
# a missing program then FAILS its tests instead of skipping them. When it cannot
# install (no apt-get, not root and no sudo, apt failed) it says so in one line
# and goes on; the fixtures then skip with the reason.
# CF_SYSTEM_DEPS=0 skips this step altogether; CF_SYSTEM_PACKAGES replaces the
# "package:program ..." list (tests/test_programs.py uses it).

_cf_system_deps() {
    # package:program pairs; the program is what the fixtures look for.
    local pairs="${CF_SYSTEM_PACKAGES:-nginx:nginx tinyproxy:tinyproxy redis-server:redis-server microsocks:microsocks}"
    local path="$PATH:/usr/sbin:/usr/local/sbin:/sbin"
    local missing=() pair
    for pair in $pairs; do
        PATH="$path" command -v "${pair#*:}" >/dev/null 2>&1 || missing+=("${pair%%:*}")
    done
    if [ "${#missing[@]}" -eq 0 ]; then
        return 0
    fi
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true >/dev/null 2>&1; then
            sudo=(sudo -n)
        else
            echo "== system programs: cannot install ${missing[*]} (not root, no sudo): their tests skip" >&2
            return 1
        fi
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "== system programs: cannot install ${missing[*]} (no apt-get): their tests skip" >&2
        return 1
    fi
    echo "== system programs: installing ${missing[*]} ..." >&2
    local log
    log="$(mktemp)"
    local install=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq
        --no-install-recommends -o DPkg::Lock::Timeout=300 "${missing[@]}")
    if ! "${install[@]}" >"$log" 2>&1; then
        if grep -qE "Unable to locate package|has no installation candidate|Failed to fetch|404" "$log"; then
            "${sudo[@]}" apt-get update -qq -o DPkg::Lock::Timeout=300 >"$log" 2>&1 || true
            "${install[@]}" >"$log" 2>&1 || true
        fi
    fi
    local still=()
    for pair in $pairs; do
        PATH="$path" command -v "${pair#*:}" >/dev/null 2>&1 || still+=("${pair%%:*}")
    done
    if [ "${#still[@]}" -ne 0 ]; then
        echo "== system programs: apt-get could not install ${still[*]} ($(tail -n 1 "$log")): their tests skip" >&2
        rm -f "$log"
        return 1
    fi
    rm -f "$log"
    return 0
}

if [ "${CF_SYSTEM_DEPS:-1}" != "0" ]; then
    if _cf_system_deps; then
        export CF_REQUIRE_PROGRAMS="${CF_REQUIRE_PROGRAMS:-1}"
    fi
fi
unset -f _cf_system_deps
