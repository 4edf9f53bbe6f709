#!/bin/sh
# The linker for a cell's shared library (kernel/cell_build.py passes it as `-C linker`).
#
# rustc links every cell against the native libraries of all of mechlens' dependencies,
# libtorch's included, although the cell reaches them only through libmechlens.so, which was
# linked against them and loads them (rustc re-adds an upstream crate's dynamic native
# libraries to every link). For libtorch that meant rust-lld reading the symbol tables of
# ~900 MB of shared objects on each cell, ~0.06-0.1 s of a 0.26 s build; with --as-needed
# none of them ended up in the cell's library anyway. So this drops each `-lNAME` that is one
# of libtorch's own libraries ($LIBTORCH/lib/libNAME.so) and runs the compiler driver rustc
# would have run.
for arg do
  shift
  case $arg in
    -l*) [ -n "${LIBTORCH:-}" ] && [ -e "$LIBTORCH/lib/lib${arg#-l}.so" ] && continue ;;
  esac
  set -- "$@" "$arg"
done
exec "${MECHLENS_CELL_CC:-cc}" "$@"
