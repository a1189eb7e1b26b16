# Sourced by the set-up scripts that install Debian packages on the host (pi_root.sh,
# k210_firmware_toolchain.sh): apt_install LOG PACKAGE... installs them non-interactively, with an
# apt-get update and a second try when the first fails, logging to LOG; on failure it calls the sourcing
# script's fail() with apt's last line.
apt_install() {
    local log=$1
    shift
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y --no-install-recommends "$@" >"$log" 2>&1; then
        apt-get update >>"$log" 2>&1 || true
        apt-get install -y --no-install-recommends "$@" >>"$log" 2>&1 ||
            fail "apt-get install $* failed: $(tail -n 1 "$log") (log: $log)"
    fi
}
