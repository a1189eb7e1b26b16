#!/usr/bin/env bash
# Builds the K210 toolchain environment: nncase 1.9.0.20230322 (the last nncase with target k210), whose
# wheels need CPython 3.6-3.10. Two routes, tried in this order unless K210_ROUTE says which:
#   venv         a CPython 3.8-3.10 found on PATH or under pyenv -> a plain venv
#   debootstrap  a Debian bullseye root (python3 3.9) made with debootstrap, run through chroot (needs root)
# The result is DIR/python: a command that runs a Python with nncase, with the current folder visible at
# the same path. DIR/route says which route was taken. Idempotent: an existing working DIR is kept.
# On failure DIR/unavailable holds the one-line reason (the tests skip with it) and the exit code is 1.
set -euo pipefail

DIR=${1:-.k210}
ROUTE=${K210_ROUTE:-auto}
NNCASE_PIN="nncase==1.9.0.20230322"
NUMPY_PIN="numpy==1.24.4"   # nncase 1.9 works with NumPy 1.x; 1.24.4 has wheels for CPython 3.8-3.10
SUITE=bullseye

mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
rm -f "$DIR/unavailable"

fail() {
    echo "$1" > "$DIR/unavailable"
    echo "k210-toolchain: $1" >&2
    exit 1
}

works() {
    [ -x "$DIR/python" ] && "$DIR/python" -c "import nncase, numpy" >/dev/null 2>&1
}

if works; then
    echo "k210-toolchain: $DIR ready ($(cat "$DIR/route"))"
    exit 0
fi

find_python() {
    local candidates=() version
    for version in 3.10 3.9 3.8; do
        candidates+=("$(command -v "python$version" 2>/dev/null || true)")
        if command -v pyenv >/dev/null 2>&1; then
            candidates+=("$(pyenv root)"/versions/"$version".*/bin/python"$version")
        fi
    done
    for candidate in "${candidates[@]}"; do
        # pyenv shims exist on PATH but fail unless that version is selected, so run each one.
        if [ -n "$candidate" ] && [ -x "$candidate" ] &&
            "$candidate" -c 'import sys, venv; assert (3, 8) <= sys.version_info[:2] <= (3, 10)' >/dev/null 2>&1; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}

venv_route() {
    local python
    python=$(find_python) || return 1
    echo "k210-toolchain: venv with $python"
    rm -rf "$DIR/venv"
    "$python" -m venv "$DIR/venv"
    "$DIR/venv/bin/pip" install --quiet --disable-pip-version-check "$NNCASE_PIN" "$NUMPY_PIN"
    cat > "$DIR/python" <<EOF
#!/bin/sh
exec "$DIR/venv/bin/python" "\$@"
EOF
    chmod +x "$DIR/python"
    echo "venv, $("$python" -c 'import sys; print("CPython", sys.version.split()[0])') at $python" > "$DIR/route"
}

host_mirror() {
    # The host's own Debian mirror (deb822 or one-line sources), so this works wherever apt works.
    local uri
    uri=$(grep -hE '^(URIs:|deb )' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null |
        grep -v security | head -n 1 | sed -E 's/^URIs: *//; s/^deb (\[[^]]*\] )?//; s/ .*//')
    echo "${uri:-http://deb.debian.org/debian}"
}

debootstrap_route() {
    [ "$(id -u)" = 0 ] || { echo "k210-toolchain: the debootstrap route needs root" >&2; return 1; }
    command -v debootstrap >/dev/null 2>&1 || apt-get install -y -q debootstrap >/dev/null ||
        { echo "k210-toolchain: debootstrap is not installed and apt cannot install it" >&2; return 1; }
    local root="$DIR/root" mirror
    mirror=$(host_mirror)
    echo "k210-toolchain: debootstrap $SUITE from $mirror into $root"
    if [ ! -x "$root/usr/bin/python3" ]; then
        rm -rf "$root"
        debootstrap --variant=minbase "$SUITE" "$root" "$mirror" >"$DIR/debootstrap.log" 2>&1 ||
            { echo "k210-toolchain: debootstrap failed, see $DIR/debootstrap.log" >&2; return 1; }
        # The host may trust extra CAs (a proxy); pip inside the root needs them too.
        if [ -d /usr/local/share/ca-certificates ]; then
            mkdir -p "$root/usr/local/share/ca-certificates"
            cp -r /usr/local/share/ca-certificates/. "$root/usr/local/share/ca-certificates/"
        fi
        chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
            sh -c 'apt-get update -q && apt-get install -y -q python3 python3-venv ca-certificates libgomp1 && update-ca-certificates' \
            >>"$DIR/debootstrap.log" 2>&1 || { echo "k210-toolchain: apt in the root failed, see $DIR/debootstrap.log" >&2; return 1; }
    fi
    chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root sh -c \
        "python3 -m venv /opt/nncase && /opt/nncase/bin/pip install --quiet --disable-pip-version-check '$NNCASE_PIN' '$NUMPY_PIN'" \
        >>"$DIR/debootstrap.log" 2>&1 || { echo "k210-toolchain: pip in the root failed, see $DIR/debootstrap.log" >&2; return 1; }
    # Inside the root: enter the work folder, run the venv's Python with a clean environment.
    cat > "$root/usr/local/bin/nncase-python" <<'INNER'
#!/bin/sh
cd "$1" && shift && exec /usr/bin/env -i PATH=/usr/bin:/bin HOME=/root /opt/nncase/bin/python "$@"
INNER
    chmod +x "$root/usr/local/bin/nncase-python"
    # Each call gets a private mount namespace (gone when the process ends) in which the work folder,
    # K210_WORK or else the current one, is bind-mounted at the same path inside the root.
    cat > "$DIR/python" <<EOF
#!/bin/sh
work=\${K210_WORK:-\$(pwd)}
exec unshare --mount /bin/sh -c 'mkdir -p "\$0\$1" && mount --bind "\$1" "\$0\$1" && exec chroot "\$0" /usr/local/bin/nncase-python "\$@"' "$root" "\$work" "\$@"
EOF
    chmod +x "$DIR/python"
    echo "debootstrap $SUITE root (python3 $(chroot "$root" python3 -c 'import sys; print(sys.version.split()[0])')), chroot" > "$DIR/route"
}

case "$ROUTE" in
    venv) venv_route || fail "no CPython 3.8-3.10 found (PATH, pyenv) for the venv route; try K210_ROUTE=debootstrap" ;;
    debootstrap) debootstrap_route || fail "the debootstrap route failed (needs root and the Debian archive); see $DIR/debootstrap.log" ;;
    auto) venv_route || debootstrap_route ||
        fail "no CPython 3.8-3.10 (PATH, pyenv) and the debootstrap route failed (needs root and the Debian archive)" ;;
    *) fail "K210_ROUTE=$ROUTE: expected auto, venv or debootstrap" ;;
esac

works || fail "nncase does not import in $DIR ($(cat "$DIR/route")); see firmware_notes/k210.md"
echo "k210-toolchain: $DIR ready ($(cat "$DIR/route"))"
