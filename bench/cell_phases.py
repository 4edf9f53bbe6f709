"""Where a notebook cell's time goes, phase by phase, for BENCHMARKS.md (part of `make bench`).

1. Cells in a kernel, as a user runs them (medians of 10 each):
   - a trivial cell `i + 1` (its value has a NotebookDisplay impl: one build);
   - the same with a value that has none (`Wrapping(i) + Wrapping(1)`): evcxr first builds
     `(expr).evcxr_display()`, which fails, then builds again with Debug: what every
     number, string, Vec or Option cell cost before mechlens displayed std values;
   - a `let` cell (tch and polars), which also runs evcxr's rust-analyzer pass.
2. The build evcxr runs for a cell, replayed in the same warm build slot with the exact
   command and environment kernel/cell_build.py gives cargo (no kernel running in it):
   - cargo with nothing to do (fingerprinting ~270 crates);
   - rustc's front end on the cell (`--emit=metadata`: parsing, loading the dependencies'
     metadata, type checking);
   - rustc through code generation (`--emit=obj`, no link);
   - the whole rustc command (with the link of the cell's shared library), as cargo runs it
     and with kernel/cell_linker.sh as the linker (what the kernel runs);
   - the whole `cargo build` after the cell's source changed;
   - what the kernel runs instead after its first build: kernel/cell_build.py replaying the
     recorded rustc command (as evcxr calls it, with the environment in the slot's record).
   What the kernel adds beyond the build (evcxr's own work, loading the library, running
   the cell, the front process) is each cell's time minus its own build, which
   kernel/cell_build.py times in the kernel (median over the cells).

Usage: cell_phases.py   (run alone: two builds at once on 2 cores slow each other)
Prints the table and returns it to kernel_bench.py.
"""

import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "kernel"))
from session import PRELUDE_CELL, KernelSession  # noqa: E402

RUNS = 10
SLOT = ROOT / ".cache" / "kernel-slots" / "slot-0" / "build"


def cell_times():
    cells = {
        "trivial cell (`i + 1`)": [f"{i} + 1" for i in range(RUNS)],
        "trivial cell without a display impl (two builds)": [
            f"std::num::Wrapping({i}) + std::num::Wrapping(1)" for i in range(RUNS)],
        "`let` cell (tch + polars)": [
            f'let t{i} = Tensor::arange({i + 2}, (Kind::Float, Device::Cpu)); let n{i} = df!("x" => &[{i}i64])?.height();'
            for i in range(RUNS)],
    }
    times, outside = {}, {}
    # The warm-up cell (kernel/proxy.py) would only delay the first measured cell.
    with KernelSession(env={"MECHLENS_NO_WARM_UP": "1"}) as k:
        k.run(PRELUDE_CELL)
        slot = k.run('std::env::var("EVCXR_TMPDIR").unwrap()').text.strip('"')
        build_seconds = Path(slot, "target", "mechlens-cell-build.seconds")
        for name, codes in cells.items():
            cell_s, beyond_s = [], []
            for code in codes:
                (seconds,) = k.run_timed([code])
                cell_s.append(seconds)
                # kernel/cell_build.py writes how long the cell's (last) build took.
                beyond_s.append(seconds - float(build_seconds.read_text()))
            times[name] = statistics.median(cell_s)
            outside[name] = statistics.median(beyond_s)
    return times, outside


def evcxr_env():
    """The environment evcxr 0.22 gives cargo for a cell (eval_context.rs, cargo_command),
    before kernel/cell_build.py changes it to build as the workspace does."""
    env = dict(os.environ)
    torch = next((ROOT / ".venv" / "lib").glob("python*/site-packages/torch"))
    env.update({"CARGO_TARGET_DIR": "target", "CARGO_BUILD_BUILD_DIR": "target",
                "RUSTFLAGS": "-Cprefer-dynamic", "LIBTORCH": str(torch),
                "LD_LIBRARY_PATH": str(torch / "lib")})
    return env


def timed(cmd, env, runs=5, before=None, cwd=SLOT):
    times = []
    for _ in range(runs):
        if before:
            before()
        start = time.monotonic()
        result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
        times.append(time.monotonic() - start)
        if result.returncode != 0:
            sys.exit(f"{cmd[:3]} failed:\n{result.stderr[-3000:]}")
    return statistics.median(times)


def build_phases():
    import cell_build  # kernel/, on the path above

    target = subprocess.run(["rustc", "-vV"], capture_output=True, text=True).stdout
    triple = next(l.split()[1] for l in target.splitlines() if l.startswith("host:"))
    # evcxr's command, as the kernel's cell builder runs it.
    cargo, env = cell_build.as_the_workspace_builds(
        ["cargo", "build", "--target", triple, "--message-format=json"], evcxr_env())
    touch = lambda: (SLOT / "src" / "lib.rs").touch()
    touch()
    verbose = subprocess.run(cargo + ["-v"], cwd=SLOT, env=env, capture_output=True, text=True)
    if verbose.returncode != 0:
        sys.exit(f"the slot does not build:\n{verbose.stderr[-3000:]}")
    line = next(l for l in verbose.stderr.splitlines() if "Running `" in l and "--crate-name ctx" in l)
    # `Running `ENV=... rustc ...`` : cargo prints the variables it sets, then the command,
    # which runs in the slot's workspace root.
    words = shlex.split(line.split("Running `", 1)[1].rstrip("`"))
    rustc_env = dict(env)
    while "=" in words[0] and not words[0].startswith("/"):
        key, value = words.pop(0).split("=", 1)
        rustc_env[key] = value
    emit = next(i for i, w in enumerate(words) if w.startswith("--emit="))
    with_emit = lambda kind: words[:emit] + [f"--emit={kind}"] + words[emit + 1:]
    phases = {
        "cargo with nothing to do": timed(cargo, env),
        "rustc front end (--emit=metadata)": timed(with_emit("metadata"), rustc_env, cwd=SLOT.parent),
        "rustc to object code (--emit=obj, no link)": timed(with_emit("obj"), rustc_env, cwd=SLOT.parent),
        "rustc with the link": timed(words, rustc_env, cwd=SLOT.parent),
        "rustc with the link, through kernel/cell_linker.sh": timed(
            words + ["-C", f"linker={ROOT / 'kernel' / 'cell_linker.sh'}"], rustc_env, cwd=SLOT.parent),
        "cargo build of a changed cell": timed(cargo, env, before=touch),
    }
    replay = cell_builder_replay(touch)
    if replay is not None:
        phases["kernel/cell_build.py replay of a changed cell"] = replay
    return phases


def cell_builder_replay(touch):
    """kernel/cell_build.py as evcxr runs it in the last kernel's session, from the slot's
    record (whose key holds the arguments and environment it was recorded with)."""
    import cell_build  # kernel/, on the path above

    state = cell_build.load(SLOT / cell_build.STATE_FILE)
    if state is None:
        return None
    _version, args, env, _manifests = state["key"]
    python = ROOT / ".venv" / "bin" / "python"
    command = [str(python), "-S", "-E", str(ROOT / "kernel" / "cell_build.py"), *args]
    seconds = timed(command, dict(env), before=touch)
    last = (SLOT / cell_build.LAST_FILE).read_text()
    if last != "replay":
        sys.exit(f"the cell builder ran {last}, not its replay: the record does not match")
    return seconds


def main():
    cells, outside = cell_times()
    phases = build_phases()
    link = phases["rustc with the link"] - phases["rustc to object code (--emit=obj, no link)"]
    rows = [(name, seconds) for name, seconds in cells.items()]
    rows += [(f"build: {name}", seconds) for name, seconds in phases.items()]
    rows += [("build: the link alone (with link − to object code)", link),
             ("outside the build, trivial cell (cell − its build)", outside["trivial cell (`i + 1`)"]),
             ("outside the build, `let` cell (cell − its build)", outside["`let` cell (tch + polars)"])]
    for name, seconds in rows:
        print(f"{seconds:7.3f} s  {name}")
    return rows


if __name__ == "__main__":
    main()
