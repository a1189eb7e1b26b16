#!/usr/bin/env bash
# A Debian 12 (bookworm) arm64 root for make pi-check: a 64-bit Raspberry Pi OS stand-in (Pi OS Bookworm is
# Debian bookworm with Raspberry Pi's kernel, firmware and camera packages), run on this machine through
# qemu-user-static and binfmt_misc. Built once into DIR/bookworm-arm64-ROUTE, rebuilt when missing; each
# venv is reinstalled when its requirements file changes.
#   ROUTE=apt   the device side exactly as firmware_notes/raspberry_pi.md tells a Pi user: apt's python3-opencv,
#               python3-numpy, python3-pil (python3-picamera2 is in Raspberry Pi's own archive, not Debian's, so
#               it is left out), a venv with --system-site-packages and requirements-pi.txt -> /opt/vgg-edge/venv-pi;
#               and the pure-PyPI route beside it, requirements-runtime.txt -> /opt/vgg-edge/venv-pypi
#   ROUTE=pypi  a minimal root (python3, python3-venv) with the PyPI route only: the cheap form make test builds
# Usage: scripts/pi_root.sh DIR [apt|pypi] [REPO]. Needs root, debootstrap, qemu-user-static, binfmt-support
# (installed with apt-get when missing) and binfmt_misc (mounted when it is not). On failure one line says
# why, in DIR/bookworm-arm64-ROUTE.unavailable too (the tests skip with it), and the exit code is 1.
set -euo pipefail

DIR=${1:?usage: scripts/pi_root.sh DIR [apt|pypi] [REPO]}
ROUTE=${2:-apt}
REPO=$(cd "${3:-$(dirname "$0")/..}" && pwd)
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY=${DEBIAN_SECURITY_MIRROR:-http://security.debian.org/debian-security}
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
ROOT="$DIR/bookworm-arm64-$ROUTE"
rm -f "$ROOT.unavailable"
PACKAGES="debootstrap qemu-user-static binfmt-support"

fail() {
    echo "$1" > "$ROOT.unavailable"
    echo "pi-root: $1" >&2
    exit 1
}
. "$(dirname "$0")/apt_install.sh"

case "$ROUTE" in
    apt) BASE="python3,python3-venv" ; APT_PACKAGES="python3-opencv python3-numpy python3-pil" ;;
    pypi) BASE="python3,python3-venv" ; APT_PACKAGES="" ;;
    *) echo "pi-root: ROUTE $ROUTE: use apt or pypi" >&2; exit 2 ;;
esac

[ "$(id -u)" = 0 ] || fail "needs root (debootstrap, chroot, binfmt_misc): run make pi-check as root or with sudo"

if ! command -v debootstrap >/dev/null || ! command -v qemu-aarch64-static >/dev/null || ! command -v update-binfmts >/dev/null; then
    command -v apt-get >/dev/null || fail "missing $PACKAGES and no apt-get to install them (firmware_notes/raspberry_pi.md, section 6)"
    echo "pi-root: apt-get install $PACKAGES"
    # shellcheck disable=SC2086 # PACKAGES is a list of words
    apt_install "$DIR/apt.log" $PACKAGES
fi

# binfmt_misc lets the kernel hand arm64 programs to qemu-aarch64-static, so that chroot runs them. Debian's
# qemu-user-static registers with the F flag (the emulator is opened at registration), so the root needs no
# copy of it.
BINFMT=/proc/sys/fs/binfmt_misc
if [ ! -e "$BINFMT/qemu-aarch64" ] || ! grep -q '^enabled' "$BINFMT/qemu-aarch64"; then
    if [ ! -e "$BINFMT/register" ]; then
        mount -t binfmt_misc binfmt_misc "$BINFMT" 2>/dev/null ||
            fail "binfmt_misc is not mounted and cannot be (a container without it?): mount -t binfmt_misc binfmt_misc $BINFMT"
    fi
    update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
    grep -qs '^enabled' "$BINFMT/qemu-aarch64" ||
        fail "qemu-aarch64 is not registered with binfmt_misc: update-binfmts --enable qemu-aarch64 (package qemu-user-static)"
fi

in_root() {
    # A clean environment: the host's pip/SSL variables name host paths that mean nothing inside the root.
    chroot "$ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
        DEBIAN_FRONTEND=noninteractive PIP_CERT=/opt/vgg-edge/host-ca.crt PIP_DISABLE_PIP_VERSION_CHECK=1 "$@"
}

started=$(date +%s)
if [ ! -f "$ROOT/.vgg-edge-base" ]; then
    echo "pi-root: debootstrap bookworm arm64 ($ROUTE route) into $ROOT"
    rm -rf "$ROOT" "$ROOT.partial"
    debootstrap --arch=arm64 --variant=minbase --include="$BASE" bookworm "$ROOT.partial" "$MIRROR" \
        >"$DIR/debootstrap-$ROUTE.log" 2>&1 ||
        fail "debootstrap failed: $(tail -n 1 "$DIR/debootstrap-$ROUTE.log") (log: $DIR/debootstrap-$ROUTE.log)"
    mv "$ROOT.partial" "$ROOT"
    # A Pi OS root reads bookworm's updates and security archives too.
    printf 'deb %s bookworm main\ndeb %s bookworm-updates main\ndeb %s bookworm-security main\n' \
        "$MIRROR" "$MIRROR" "$SECURITY" > "$ROOT/etc/apt/sources.list"
    cp /etc/resolv.conf "$ROOT/etc/resolv.conf" 2>/dev/null || true
    if [ -n "$APT_PACKAGES" ]; then
        echo "pi-root: apt install -y $APT_PACKAGES (inside the root, as on the Pi)"
        { in_root apt-get update && in_root apt-get install -y $APT_PACKAGES; } >"$DIR/apt-$ROUTE.log" 2>&1 ||
            fail "apt-get install $APT_PACKAGES inside the root failed: $(tail -n 1 "$DIR/apt-$ROUTE.log") (log: $DIR/apt-$ROUTE.log)"
        in_root apt-get clean
    fi
    touch "$ROOT/.vgg-edge-base"
fi

# pip inside the root verifies TLS with this machine's certificate authorities (where a proxy re-signs TLS,
# as on the machine this was written on, the root's own bundle does not know its authority).
mkdir -p "$ROOT/opt/vgg-edge"
cp "${PIP_CERT:-${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}}" "$ROOT/opt/vgg-edge/host-ca.crt"
cp /etc/resolv.conf "$ROOT/etc/resolv.conf" 2>/dev/null || true

venv() {  # NAME REQUIREMENTS [VENV FLAGS]
    local name=$1 requirements=$2 target="$ROOT/opt/vgg-edge/$1"
    shift 2
    local want
    want=$(sha256sum "$requirements" | cut -d' ' -f1)
    if [ "$(cat "$target/.requirements.sha256" 2>/dev/null)" = "$want" ]; then
        return
    fi
    echo "pi-root: python3 -m venv $* /opt/vgg-edge/$name && pip install -r $(basename "$requirements") (inside the root)"
    rm -rf "$target"
    cp "$requirements" "$ROOT/opt/vgg-edge/$(basename "$requirements")"
    { in_root python3 -m venv "$@" "/opt/vgg-edge/$name" &&
        in_root "/opt/vgg-edge/$name/bin/pip" install --quiet -r "/opt/vgg-edge/$(basename "$requirements")"; } \
        >"$DIR/pip-$ROUTE-$name.log" 2>&1 || {
        rm -rf "$target"
        fail "pip install -r $(basename "$requirements") inside the root failed: $(tail -n 1 "$DIR/pip-$ROUTE-$name.log") (log: $DIR/pip-$ROUTE-$name.log)"
    }
    echo "$want" > "$target/.requirements.sha256"
}

if [ "$ROUTE" = apt ]; then
    venv venv-pi "$REPO/requirements-pi.txt" --system-site-packages
fi
venv venv-pypi "$REPO/requirements-runtime.txt"
echo "pi-root: $ROOT ready ($(( $(date +%s) - started )) s; $(du -sh "$ROOT" | cut -f1))"
