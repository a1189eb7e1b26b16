#!/usr/bin/env bash
# The bare-metal RISC-V toolchain for the K210 firmware (make firmware, make kmodel-riscv-check):
#   Debian 12 packages  gcc-riscv64-unknown-elf (GCC 12.2, C/C++, no libstdc++), picolibc-riscv64-unknown-elf
#                       (C library with the K210's rv64imafc/lp64f multilib), gcc-12-source (to build
#                       libstdc++), cmake, ninja-build, qemu-system-misc (qemu-system-riscv64, for the check)
#   libstdc++           libstdc++-v3 of gcc-12-source configured alone for riscv64-unknown-elf against picolibc,
#                       for rv64imafc/lp64f only, into DIR/libstdcxx-12.2.0 (built once, then kept)
# Installs the packages with apt-get when they are missing (needs root). Idempotent. On failure one line
# says what is missing, in DIR/unavailable too (the tests skip with it), and the exit code is 1.
set -euo pipefail

DIR=${1:-.k210/firmware}
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
rm -f "$DIR/unavailable"

PACKAGES="gcc-riscv64-unknown-elf picolibc-riscv64-unknown-elf gcc-12-source cmake ninja-build qemu-system-misc"
PICOLIBC=/usr/lib/picolibc/riscv64-unknown-elf
GCC_TARBALL=/usr/src/gcc-12/gcc-12.2.0-dfsg.tar.xz
LIBSTDCXX="$DIR/libstdcxx-12.2.0"
FLAGS="-march=rv64imafc -mabi=lp64f -mcmodel=medany -Os -ffunction-sections -fdata-sections -fno-common"

fail() {
    echo "$1" > "$DIR/unavailable"
    echo "k210-firmware-toolchain: $1" >&2
    exit 1
}
. "$(dirname "$0")/apt_install.sh"

have_packages() {
    command -v riscv64-unknown-elf-g++ >/dev/null && [ -f "$PICOLIBC/picolibc.specs" ] && [ -f "$GCC_TARBALL" ] &&
        command -v cmake >/dev/null && command -v ninja >/dev/null && command -v qemu-system-riscv64 >/dev/null
}

if ! have_packages; then
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
        fail "missing Debian packages and no root apt-get to install them: sudo apt-get install $PACKAGES (firmware_notes/k210.md)"
    fi
    echo "k210-firmware-toolchain: apt-get install $PACKAGES"
    # shellcheck disable=SC2086 # PACKAGES is a list of words
    apt_install "$DIR/apt.log" $PACKAGES
    have_packages || fail "the packages installed but a tool is still missing: $PACKAGES (log: $DIR/apt.log)"
fi

if [ -f "$LIBSTDCXX/lib/libstdc++.a" ] && [ -f "$LIBSTDCXX/.complete" ]; then
    echo "k210-firmware-toolchain: $LIBSTDCXX ready"
    exit 0
fi

echo "k210-firmware-toolchain: building libstdc++ (GCC 12.2, rv64imafc/lp64f, picolibc) into $LIBSTDCXX"
started=$(date +%s)
WORK=$(mktemp -d "$DIR/libstdcxx-build.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
# Only what libstdc++-v3's own configure and build read, not the whole GCC tree.
tar -xJf "$GCC_TARBALL" -C "$WORK" --wildcards 'gcc-12.2.0/libstdc++-v3/*' 'gcc-12.2.0/libiberty/*' \
    'gcc-12.2.0/libgcc/*' 'gcc-12.2.0/config/*' 'gcc-12.2.0/include/*' 'gcc-12.2.0/gcc/BASE-VER' \
    'gcc-12.2.0/gcc/DATESTAMP' 'gcc-12.2.0/config.sub' 'gcc-12.2.0/config.guess' 'gcc-12.2.0/install-sh' \
    'gcc-12.2.0/ltmain.sh' 'gcc-12.2.0/mkinstalldirs' 'gcc-12.2.0/move-if-change' 'gcc-12.2.0/config-ml.in' \
    'gcc-12.2.0/missing' 'gcc-12.2.0/depcomp' 'gcc-12.2.0/compile' 'gcc-12.2.0/libtool.m4' \
    'gcc-12.2.0/ltoptions.m4' 'gcc-12.2.0/config.rpath' 'gcc-12.2.0/libtool-ldflags'
mkdir "$WORK/build"
rm -rf "$LIBSTDCXX"
# --oslib=semihost lets configure link its test programs (picolibc wants a stdout); no wchar_t: picolibc
# has no wide-character stdio, which libstdc++'s wide streams would call; no threads on this bare metal.
(
    cd "$WORK/build"
    "$WORK/gcc-12.2.0/libstdc++-v3/configure" --host=riscv64-unknown-elf --build="$("$WORK/gcc-12.2.0/config.guess")" \
        --prefix="$LIBSTDCXX" --with-newlib --disable-shared --enable-static --disable-multilib --disable-nls \
        --disable-libstdcxx-pch --disable-libstdcxx-verbose --disable-libstdcxx-threads --disable-wchar_t \
        --enable-cxx-flags="$FLAGS" CC="riscv64-unknown-elf-gcc --specs=picolibc.specs" \
        CXX="riscv64-unknown-elf-g++ --specs=picolibc.specs -nostdinc++" CFLAGS="$FLAGS" CXXFLAGS="$FLAGS" \
        LDFLAGS="--oslib=semihost" AR=riscv64-unknown-elf-ar RANLIB=riscv64-unknown-elf-ranlib
    make -j"$(nproc)"
    make install
) >"$DIR/libstdcxx.log" 2>&1 || fail "the libstdc++ build failed: $(tail -n 1 "$DIR/libstdcxx.log") (log: $DIR/libstdcxx.log)"
touch "$LIBSTDCXX/.complete"
echo "k210-firmware-toolchain: libstdc++ built in $(( $(date +%s) - started )) s"
