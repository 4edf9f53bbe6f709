"""The cargo that evcxr runs in a kernel: a cell's build without cargo's ~0.3 s of checking.

evcxr builds every cell with `cargo build` in its crate (the slot's build/). The only thing
that changes from one cell to the next is that crate's src/lib.rs, yet cargo re-checks the
fingerprints of all ~430 crates behind mechlens first: 0.27-0.34 s on 2 cores, more than
rustc then takes for the cell itself. So kernel/launch puts a folder first on evcxr's PATH
where `rustup which cargo` and `cargo` lead here (kernel/rustup_shim.sh, and a `cargo` that
runs this file), and this program:

- runs the real cargo for the first build of each kernel session, for any change to the
  crate's manifests, lock or build environment (a `:dep`, `:build_env`), and whenever it has
  no valid record. That run goes through this file as cargo's RUSTC_WORKSPACE_WRAPPER, which
  records the exact rustc command cargo ran for the cell's crate (`ctx`) and what cargo
  reported it built. It gives that command kernel/cell_linker.sh as its linker, which keeps
  libtorch's libraries out of the cell's link (~0.06-0.1 s a cell);
- otherwise runs that recorded rustc command itself, on the new src/lib.rs, and reports to
  evcxr as cargo would have (rustc's JSON diagnostics, then the artifact line), after linking
  the library where cargo would have put it.

Every cargo run it makes (and evcxr's `cargo check`) builds as the workspace does, not as
evcxr asks: without `--target HOST` and without RUSTFLAGS=-Cprefer-dynamic, which would give
every crate another hash and a second build, with kernel/dylib_rustc.sh adding that flag back
where it matters (see there). A new slot then starts from the workspace's compiled
dependencies (kernel/seed_slot.py).

"Nothing but the cell changed" means: the same arguments and environment (which include the
kernel's session id, so each kernel starts with a real cargo run, which also rebuilds mechlens
if its sources changed), the same manifests and lock, and each file rustc links against
(`--extern`) unchanged since the record. Anything else, an evcxr mode with a rustc wrapper of
its own (`:cache`, `:sccache`, `:allow_static_linking false`), and every other cargo command go
to the real cargo unchanged.

The replay path imports only os, sys, time and marshal (built into the interpreter or frozen):
it runs before every cell, and `json` or `subprocess` alone would add ~10 ms each to it.

Usage (by evcxr, not by hand): cargo build --target HOST --message-format=json
           (by cargo, while recording): cell_build.py RUSTC ARGS...
"""

import marshal
import os
import sys
import time

CRATE_NAME = "ctx"  # evcxr's name for the crate that holds the cells
STATE_FILE = "target/mechlens-cell-build.state"  # relative to evcxr's crate dir
RECORD_FILE = "target/mechlens-cell-build.record"
REPLAY_STDERR = "target/mechlens-cell-build.stderr"
LAST_FILE = "target/mechlens-cell-build.last"  # "replay" or "cargo": how the last cell was built
SECONDS_FILE = "target/mechlens-cell-build.seconds"  # how long the last cell's build took
RECORD_ENV = "MECHLENS_CELL_BUILD_RECORD"
REAL_CARGO_ENV = "MECHLENS_REAL_CARGO"
SELF_ENV = "MECHLENS_CELL_BUILD"  # the command that runs this file (kernel/launch writes it)
# cargo's jobserver: file descriptors of the cargo run that a replay does not have.
JOBSERVER_ENV = ("CARGO_MAKEFLAGS", "MAKEFLAGS", "MFLAGS")
# The files whose content decides what cargo would do besides the cell (relative to the crate).
MANIFESTS = ("Cargo.toml", "Cargo.lock", "../Cargo.toml", "../Cargo.lock", ".cargo/config.toml")
STATE_VERSION = 1


def main(argv):
    if os.environ.get(RECORD_ENV) and len(argv) > 1 and is_rustc(argv[1]):
        return record_and_run_rustc(argv[1:])
    if is_cell_build(argv):
        started = time.monotonic()
        key = build_key(argv)
        replayed = replay(key)
        if replayed is not None:
            note("replay", started)
            return replayed
        status = build_with_cargo(argv)
        note("cargo", started)
        return status
    cargo = real_cargo()
    argv, env = as_the_workspace_builds(argv, dict(os.environ))
    os.execvpe(cargo, [cargo] + argv[1:], env)


def real_cargo():
    return os.environ.get(REAL_CARGO_ENV) or "cargo"


def as_the_workspace_builds(argv, env):
    """evcxr's `cargo build|check --target HOST` with RUSTFLAGS=-Cprefer-dynamic, as the same
    command without either and with kernel/dylib_rustc.sh as the rustc wrapper. Unchanged: other
    commands, and evcxr's modes that bring a rustc wrapper of their own (`:cache`, `:sccache`)."""
    if len(argv) < 2 or argv[1] not in ("build", "check") or env.get("RUSTC_WRAPPER"):
        return argv, env
    kept, words = [], iter(argv)
    for word in words:
        if word == "--target":
            next(words, None)
        elif not word.startswith("--target="):
            kept.append(word)
    flags, words = [], iter(env.pop("RUSTFLAGS", "").split())
    for word in words:
        if word == "-C":
            value = next(words, "")
            if value != "prefer-dynamic":
                flags += [word, value]
        elif word != "-Cprefer-dynamic":
            flags.append(word)
    # (Any flag left, a user's `:build_env RUSTFLAGS` or `:linker`, replaces the workspace's as
    # RUSTFLAGS always does: those builds cannot share the workspace's dependencies.)
    if flags:
        env["RUSTFLAGS"] = " ".join(flags)
    env["RUSTC_WRAPPER"] = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dylib_rustc.sh")
    return kept, env


def is_rustc(word):
    return os.path.basename(word).startswith("rustc")


def is_cell_build(argv):
    """A `cargo build --message-format=json` of evcxr's crate, with no rustc wrapper of its own."""
    if len(argv) < 2 or argv[1] != "build" or "--message-format=json" not in argv:
        return False
    if os.environ.get("RUSTC_WRAPPER"):
        return False
    manifest = read_bytes("Cargo.toml")
    return manifest is not None and f'name = "{CRATE_NAME}"'.encode() in manifest


def read_bytes(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def build_key(argv):
    """Everything that must be as it was at the recorded cargo run (compared whole: a few
    hundred kB, faster than importing hashlib)."""
    env = sorted((k, v) for k, v in os.environ.items() if k not in JOBSERVER_ENV)
    return (STATE_VERSION, tuple(argv[1:]), tuple(env), tuple(read_bytes(m) for m in MANIFESTS))


def flag_values(argv, flag):
    """The values that follow `flag` in a command line (`--extern a=… --extern b=…`)."""
    return [value for name, value in zip(argv, argv[1:]) if name == flag]


def stamp(path):
    try:
        info = os.stat(path)
    except OSError:
        return None
    return (info.st_mtime_ns, info.st_size)


def load(path):
    try:
        with open(path, "rb") as f:
            return marshal.load(f)
    except (OSError, EOFError, ValueError, TypeError):
        return None


def save(path, value):
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as f:
        marshal.dump(value, f)
    os.replace(tmp, path)


def note(how, started):
    """How the cell was built, and how long its build took (for bench/cell_phases.py)."""
    try:
        with open(LAST_FILE, "w") as f:
            f.write(how)
        with open(SECONDS_FILE, "w") as f:
            f.write(f"{time.monotonic() - started:.6f}")
    except OSError:
        pass


def forget():
    try:
        os.unlink(STATE_FILE)
    except OSError:
        pass


def replay(key):
    """Runs the recorded rustc command for the cell; None when only cargo can build it."""
    state = load(STATE_FILE)
    if not state or state["key"] != key:
        return None
    if any(stamp(path) != old for path, old in state["stamps"].items()):
        return None
    argv, env, cwd = state["rustc"]
    # rustc's messages go to a file first: a failure that is not the cell's (a library file
    # removed under us) goes to cargo instead, with nothing half-reported.
    with open(REPLAY_STDERR, "wb") as err:
        pid = spawn_in(cwd, argv, env, err)
    status = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    messages = read_bytes(REPLAY_STDERR) or b""
    if status != 0 and b'"level":"error"' not in messages:
        forget()
        return None
    # evcxr reads rustc's JSON diagnostics from either stream, as cargo relays them.
    sys.stderr.buffer.write(messages)  # (os.write may write only part of a long message)
    sys.stderr.flush()
    if status == 0:
        uplift(state["out_dir"], state["filenames"])
        print(state["artifact"])
    print('{"reason":"build-finished","success":%s}' % ("true" if status == 0 else "false"))
    return 0 if status == 0 else 101


def spawn_in(cwd, argv, env, err):
    """posix_spawn has no working directory of its own: fork, chdir, exec."""
    pid = os.fork()
    if pid == 0:
        try:
            os.chdir(cwd)
            os.dup2(err.fileno(), 2)
            os.execve(argv[0], argv, env)
        finally:
            os._exit(127)
    return pid


def uplift(out_dir, filenames):
    """What cargo does after rustc: link the library from deps/ to where it reports it."""
    for reported in filenames:
        built = os.path.join(out_dir, os.path.basename(reported))
        if reported == built or not os.path.exists(built):
            continue
        try:
            os.unlink(reported)
        except OSError:
            pass
        try:
            os.link(built, reported)
        except OSError:
            import shutil

            shutil.copy2(built, reported)


def build_with_cargo(argv):
    """The real `cargo build`, recording the cell crate's rustc command on the way."""
    import subprocess

    record_path = os.path.abspath(RECORD_FILE)
    try:
        os.unlink(record_path)
    except OSError:
        pass
    cargo_argv, env = as_the_workspace_builds(argv, dict(os.environ))
    env[RECORD_ENV] = record_path
    env["RUSTC_WORKSPACE_WRAPPER"] = os.environ.get(SELF_ENV) or os.path.abspath(sys.argv[0])
    # stderr (cargo's progress and rustc's messages) streams straight to evcxr.
    result = subprocess.run([real_cargo()] + cargo_argv[1:], env=env, stdout=subprocess.PIPE)
    sys.stdout.buffer.write(result.stdout)
    sys.stdout.flush()
    if result.returncode == 0:
        # The key as cargo leaves things: its first run in a slot adds the kernel's own
        # entries to the workspace's lock, which the next cell's key must match.
        remember(build_key(argv), load(record_path), result.stdout)
    return result.returncode


def remember(key, record, cargo_stdout):
    import json

    if record is None:
        # cargo found the cell crate up to date and did not run rustc: an earlier record with
        # the same key still describes it.
        state = load(STATE_FILE)
        if not state or state["key"] != key:
            forget()
        return
    artifact = None
    for line in cargo_stdout.decode("utf-8", "replace").splitlines():
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if message.get("reason") == "compiler-artifact" and message.get("target", {}).get("name") == CRATE_NAME:
            artifact = (line, message.get("filenames") or [])
    argv, _env, _cwd = record
    out_dirs = flag_values(argv, "--out-dir")
    if artifact is None or not out_dirs:
        forget()
        return
    linked = [value.split("=", 1)[1] for value in flag_values(argv, "--extern") if "=" in value]
    save(STATE_FILE, {"key": key, "rustc": record, "artifact": artifact[0],
                      "filenames": artifact[1], "out_dir": out_dirs[0],
                      "stamps": {path: stamp(path) for path in linked}})


def with_cell_linker(rustc_argv):
    """The cell's rustc command with kernel/cell_linker.sh as its linker (see there: it keeps
    libtorch's libraries out of each cell's link), unless the user chose a linker."""
    # (`-C linker=X` and `-Clinker=X` both leave a word starting so in the command.)
    if any(word.startswith(("linker=", "-Clinker=")) for word in rustc_argv):
        return rustc_argv
    return rustc_argv + ["-C", "linker=" + os.path.join(os.path.dirname(os.path.abspath(__file__)), "cell_linker.sh")]


def record_and_run_rustc(rustc_argv):
    """As cargo's RUSTC_WORKSPACE_WRAPPER: note the cell crate's rustc command, then run it."""
    if CRATE_NAME in flag_values(rustc_argv[1:], "--crate-name"):
        rustc_argv = with_cell_linker(rustc_argv)
        env = {k: v for k, v in os.environ.items()
               if k not in (RECORD_ENV, "RUSTC_WORKSPACE_WRAPPER") and k not in JOBSERVER_ENV}
        save(os.environ[RECORD_ENV], (rustc_argv, env, os.getcwd()))
    os.execvp(rustc_argv[0], rustc_argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
