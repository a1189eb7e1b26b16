"""The Raspberry Pi target: the runtime checked on a Debian bookworm arm64 root under qemu (make pi-check)."""
