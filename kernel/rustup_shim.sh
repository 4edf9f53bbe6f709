#!/bin/sh
# evcxr finds the cargo it builds cells with by asking `rustup which cargo`. kernel/launch copies
# this file as rustup into a folder it puts first on evcxr's PATH, beside a `cargo` that runs
# kernel/cell_build.py, which skips cargo's checks when only the cell changed. Every other
# question goes to the real rustup.
if [ "$#" -eq 2 ] && [ "$1" = which ] && [ "$2" = cargo ]; then
  echo "$(cd "$(dirname "$0")" && pwd)/cargo"
  exit 0
fi
if [ -z "${MECHLENS_REAL_RUSTUP:-}" ]; then
  exit 1 # no rustup on this machine: evcxr then looks for cargo and rustc on PATH
fi
exec "$MECHLENS_REAL_RUSTUP" "$@"
