#!/bin/sh
# The rustc wrapper (RUSTC_WRAPPER) of a kernel slot's cargo runs (kernel/cell_build.py sets it).
#
# A slot builds with exactly the workspace's settings, so that it can start from the
# dependencies the workspace build already compiled (kernel/seed_slot.py) instead of compiling
# all ~430 of them again. evcxr gives cargo RUSTFLAGS=-Cprefer-dynamic, which would change
# every crate's hash; but the flag only matters where a crate is linked into a shared library:
# the library facade (libmechlens.so) and each cell's library must share one libstd.so, not
# carry a copy each. So cell_build.py drops it from RUSTFLAGS and this adds it back to those
# two links alone, with the rpath (to libstd.so in the toolchain) that evcxr's profile gave
# them. cargo does not count a wrapper in its fingerprints.
#
# Usage (by cargo): dylib_rustc.sh RUSTC ARGS...
for arg do
  case $arg in
    dylib | cdylib | --crate-type=dylib | --crate-type=cdylib) exec "$@" -C prefer-dynamic -C rpath ;;
  esac
done
exec "$@"
