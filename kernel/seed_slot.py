"""Seeds a kernel build slot with the dependencies another build dir already compiled.

A slot's cargo builds with the workspace's profile and flags (kernel/slot/Cargo.toml.in,
kernel/dylib_rustc.sh), so a crate from crates.io compiles there to the same unit, with the
same hash in its file names, as in the workspace's `target/`. Cargo cannot share one target
dir between the workspace and the slots (each slot's cells are uplifted to fixed names and
every slot's cargo would wait on one lock), but it takes a unit it finds in its own target
dir, with its fingerprint, as built. So this links each compiled library of SOURCE into the
slot (hard links: no copy, no disk; nothing when the two lie on different file systems) and
copies the fingerprints and build-script outputs beside them. Cargo then compiles only what
differs: mechlens' own crates (their hashes depend on the workspace root they are built
from), the facade and the cells.

Nothing is overwritten: a unit's files are named by its hash, so one the slot already has is
the same unit. rustc and the linker replace an output by renaming a new file over it, so a
later rebuild in either place leaves the other's copy alone. Build-script outputs hold the
absolute path of the dir they were made in; cargo rewrites it when it reads them back.

Usage: seed_slot.py SOURCE_PROFILE_DIR SLOT_PROFILE_DIR   (e.g. target/debug slot/build/target/debug)
"""

import fcntl
import os
import shutil
import sys
from contextlib import contextmanager
from pathlib import Path

# What a dependent build links against; test and example executables are not needed.
LIBRARY_SUFFIXES = (".rlib", ".rmeta", ".so")


class OtherFileSystem(Exception):
    pass


def seed(source: Path, slot: Path) -> int:
    """Links and copies what `slot` lacks of `source`; returns how many units were added.
    Raises OtherFileSystem, having added nothing, when the two cannot share files: copying
    gigabytes (perhaps into a RAM-backed /tmp) is not what a seed is for."""
    if not (source / "deps").is_dir():
        return 0
    (slot / "deps").mkdir(parents=True, exist_ok=True)
    if os.stat(source / "deps").st_dev != os.stat(slot / "deps").st_dev:
        raise OtherFileSystem()
    with cargo_lock(source):
        for entry in os.scandir(source / "deps"):
            if entry.name.endswith(LIBRARY_SUFFIXES) and entry.is_file():
                try:
                    os.link(entry.path, slot / "deps" / entry.name)
                except FileExistsError:
                    pass
        added = 0
        for part in (".fingerprint", "build"):
            if not (source / part).is_dir():
                continue
            (slot / part).mkdir(parents=True, exist_ok=True)
            for entry in os.scandir(source / part):
                target = slot / part / entry.name
                if entry.is_dir() and not target.exists():
                    # Copied, not linked: cargo rewrites fingerprints in place.
                    tmp = target.with_name(target.name + ".seeding")
                    shutil.rmtree(tmp, ignore_errors=True)
                    shutil.copytree(entry.path, tmp, symlinks=True)
                    tmp.rename(target)
                    if part == ".fingerprint":
                        added += 1
    return added


@contextmanager
def cargo_lock(profile_dir: Path):
    """A shared hold on the lock cargo takes while it builds in `profile_dir`, so that no
    half-finished build is copied (cargo holds it exclusively while it runs)."""
    try:
        lock = open(profile_dir / ".cargo-lock", "rb")
    except OSError:  # cargo never built there
        yield
        return
    with lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"mechlens: waiting for the cargo build in {profile_dir} to finish", file=sys.stderr)
            fcntl.flock(lock, fcntl.LOCK_SH)
        yield


def main(argv):
    if len(argv) != 3:
        sys.exit(__doc__.strip().splitlines()[-1])
    try:
        added = seed(Path(argv[1]), Path(argv[2]))
    except OtherFileSystem:
        print(f"mechlens: {argv[2]} is on another file system than {argv[1]}; it compiles every "
              "dependency itself", file=sys.stderr)
        return
    print(f"mechlens: seeded {argv[2]} with {added} units from {argv[1]}", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv)
