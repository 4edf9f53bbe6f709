"""Kernel benchmarks for `make bench`: warm start and cell latency of the "Rust · mechlens"
kernel, beside the floor (a bare evcxr kernel, no crates) measured in the same run.

Writes bench/results.json (one object per figure) and the kernel section of BENCHMARKS.md.
"""

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Kernels start from nothing here, unless a figure says it times a kernel on standby.
os.environ["MECHLENS_STANDBY"] = "0"
sys.path.insert(0, str(ROOT / "kernel"))
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests"))

# A bare evcxr kernel for the floor: evcxr_jupyter itself, no config, its own warm dir.
BARE = Path(tempfile.mkdtemp(prefix="mechlens-bench-"))
bare_spec = BARE / "kernels" / "evcxr-bare"
bare_spec.mkdir(parents=True)
(bare_spec / "kernel.json").write_text(json.dumps({
    "argv": [str(ROOT / ".tools/evcxr/bin/evcxr_jupyter"), "--control_file", "{connection_file}"],
    "display_name": "evcxr (bare)",
    "language": "rust",
    "interrupt_mode": "message",
    "env": {"EVCXR_CONFIG_DIR": str(BARE / "config"), "EVCXR_TMPDIR": str(ROOT / ".cache/bench-bare-slot")},
}))
os.environ["JUPYTER_PATH"] = str(BARE) + os.pathsep + os.environ.get("JUPYTER_PATH", "")

from session import PRELUDE_CELL, KernelSession  # noqa: E402  (after JUPYTER_PATH is set)
from report import write_results, write_section  # noqa: E402
import run_notebooks  # noqa: E402  (tests/, for the tutorials' cell timings)
import cell_phases  # noqa: E402
import standby  # noqa: E402

TRIVIAL_CELLS = [f"{i} + 1" for i in range(20)]
LIBRARY_CELLS = [
    # Alternating tch and polars work, each small so that the time is the cell's overhead.
    f"Tensor::arange({i + 2}, (Kind::Float, Device::Cpu)).sum(Kind::Float).double_value(&[])"
    if i % 2 == 0
    else f'df!("x" => &[{i}i64, 2, 3])?.height()'
    for i in range(20)
]
# `let` cells: evcxr asks rust-analyzer for each new variable's type before it compiles.
LET_CELLS = [
    f'let t{i} = Tensor::arange({i + 2}, (Kind::Float, Device::Cpu)); let n{i} = df!("x" => &[{i}i64, 2])?.height();'
    for i in range(20)
]
BARE_LET_CELLS = [f"let x{i} = {i} + 1;" for i in range(20)]
FIRST_MODEL_CELL = "let model = mechlens::datasets::babyllama(LoadOptions::default())?;"
WARM_START_RUNS = 3
READING_S = 30


def percentile(values, q):
    values = sorted(values)
    k = (len(values) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def warm_start(kernel_name, first_cell, reading_s=0):
    """Seconds from launching the kernel to the result of its first cell, sent at once; or,
    with `reading_s`, the first cell's own seconds when it comes that long after the launch
    (a reader who reads the notebook's opening first)."""
    start = time.monotonic()
    with KernelSession(kernel_name=kernel_name) as k:
        time.sleep(reading_s)
        reply = k.run(first_cell)
        if reply.status != "ok":
            sys.exit(f"first cell failed in {kernel_name}: {reply.error}")
        return reply.seconds if reading_s else time.monotonic() - start


def standby_start(first_cell):
    """Seconds from launching a kernel to the result of its first cell, sent at once, when a
    kernel on standby is ready (a notebook's restart once the reader has read a while, or
    the first notebook of `make lab`): one standby is started as an idle kernel starts it,
    and timed once it is warm."""
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, MECHLENS_STANDBY="1", MECHLENS_STANDBY_DIR=tmp)
        standby.spawn(os.getcwd(), os.getpid(), env)
        deadline = time.monotonic() + 900
        while not [i for _, i in standby.standbys(env) if i["state"] == "ready"]:
            if time.monotonic() > deadline:
                sys.exit("no standby was ready after 900 s")
            time.sleep(0.2)
        start = time.monotonic()
        with KernelSession(env={"MECHLENS_STANDBY": "1", "MECHLENS_STANDBY_DIR": tmp}) as k:
            reply = k.run(first_cell)
            if reply.status != "ok":
                sys.exit(f"first cell failed in a kernel from standby: {reply.error}")
            return time.monotonic() - start


def tutorial_cell_times():
    """Every code cell of notebooks/tutorials as nbclient times it (busy to idle), running
    each tutorial once as `make test` does."""
    times = []
    for path in sorted((ROOT / "notebooks" / "tutorials").glob("*.ipynb")):
        error = run_notebooks.run(path)
        if error:
            sys.exit(f"{path.name} failed: {error}")
        nb = json.loads((run_notebooks.OUT / path.relative_to(ROOT / "notebooks")).read_text())
        for cell in nb["cells"]:
            timing = cell.get("metadata", {}).get("execution", {})
            if cell["cell_type"] == "code" and "iopub.status.busy" in timing:
                times.append(seconds_between(timing["iopub.status.busy"], timing["iopub.status.idle"]))
    return times


def seconds_between(a, b):
    from datetime import datetime
    parse = lambda t: datetime.fromisoformat(t.replace("Z", "+00:00"))
    return (parse(b) - parse(a)).total_seconds()


def main():
    # One untimed start of each, so that both build slots are warm.
    warm_start("evcxr-bare", "1 + 1")
    warm_start("mechlens", PRELUDE_CELL)

    ours_start = [warm_start("mechlens", PRELUDE_CELL) for _ in range(WARM_START_RUNS)]
    bare_start = [warm_start("evcxr-bare", "1 + 1") for _ in range(WARM_START_RUNS)]
    ours_model = [warm_start("mechlens", FIRST_MODEL_CELL) for _ in range(WARM_START_RUNS)]
    bare_let_start = [warm_start("evcxr-bare", "let x = 1;") for _ in range(WARM_START_RUNS)]
    ours_model_read = [warm_start("mechlens", FIRST_MODEL_CELL, READING_S) for _ in range(WARM_START_RUNS)]
    standby_prelude = [standby_start(PRELUDE_CELL) for _ in range(WARM_START_RUNS)]
    standby_model = [standby_start(FIRST_MODEL_CELL) for _ in range(WARM_START_RUNS)]
    bare_let_read = [warm_start("evcxr-bare", "let x = 1;", READING_S) for _ in range(WARM_START_RUNS)]
    with KernelSession() as k:
        k.run(PRELUDE_CELL)
        ours_trivial = k.run_timed(TRIVIAL_CELLS)
        ours_library = k.run_timed(LIBRARY_CELLS)
        ours_let = k.run_timed(LET_CELLS)
    with KernelSession(kernel_name="evcxr-bare") as k:
        k.run("1 + 1")
        bare_trivial = k.run_timed(TRIVIAL_CELLS)
        bare_let = k.run_timed(BARE_LET_CELLS)
    tutorial = tutorial_cell_times()

    floor = "bare evcxr kernel, trivial cell"
    figures = [
        ("tutorial cell p50", percentile(tutorial, 0.5), "s", percentile(bare_trivial, 0.5), floor),
        ("trivial cell latency p50", percentile(ours_trivial, 0.5), "s", percentile(bare_trivial, 0.5), "bare evcxr kernel"),
        ("trivial cell latency p90", percentile(ours_trivial, 0.9), "s", percentile(bare_trivial, 0.9), "bare evcxr kernel"),
        ("let cell latency p50", percentile(ours_let, 0.5), "s", percentile(bare_let, 0.5), "bare evcxr kernel, `let x = i + 1;`"),
        ("tch/polars cell latency p50", percentile(ours_library, 0.5), "s", percentile(bare_trivial, 0.5), floor),
        ("kernel warm start", statistics.median(standby_prelude), "s",
         statistics.median(bare_start), "bare evcxr kernel, launch to first trivial cell"),
        ("time to first model", statistics.median(standby_model), "s",
         statistics.median(bare_let_start), "bare evcxr kernel, launch to `let x = 1;`"),
        ("kernel warm start, no standby", statistics.median(ours_start), "s",
         statistics.median(bare_start), "bare evcxr kernel, launch to first trivial cell"),
        ("time to first model, no standby", statistics.median(ours_model), "s",
         statistics.median(bare_let_start), "bare evcxr kernel, launch to `let x = 1;`"),
        (f"first model cell {READING_S} s after launch", statistics.median(ours_model_read), "s",
         statistics.median(bare_let_read), f"bare evcxr kernel, `let x = 1;` {READING_S} s after launch"),
    ]
    machine = f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"
    results = [
        {"name": n, "value": round(v, 3), "unit": u, "peer_value": round(p, 3), "peer": peer,
         "ratio": round(v / p, 2), "date": date.today().isoformat(), "machine": machine}
        for n, v, u, p, peer in figures
    ]
    write_results("kernel", results)
    kernel_section(figures, len(tutorial), machine)
    phase_section(machine)
    cold_setup_from_ci_log(machine)


def kernel_section(figures, tutorial_cells, machine):
    """The kernel's table in BENCHMARKS.md: (name, value, unit, peer value, peer) each."""
    rustc = subprocess.run(["rustc", "-V"], capture_output=True, text=True).stdout.strip()
    lines = [
        "## Kernel",
        "",
        f"Measured {date.today().isoformat()} on {machine}; {rustc}; evcxr_jupyter 0.22.0 built with",
        "kernel/evcxr-patches (the bare kernel runs the same binary).",
        f"Tutorial cells: every code cell of notebooks/tutorials ({tutorial_cells}), as nbclient times them.",
        f"Warm start and first model: median of {WARM_START_RUNS} launches, the cell sent at once, each taking",
        "over a kernel on standby (kernel/standby.py: what a restart, or `make lab`'s first notebook, gets);",
        "\"no standby\": evcxr started from nothing, as when no standby is ready. The",
        f"cell {READING_S} s after launch: its own time, when a reader first reads the notebook's opening",
        "(the kernel's warm-up cell runs meanwhile). Latency: 20 cells each, one kernel.",
        "The peer is the floor: a bare evcxr kernel (no crates), measured in the same run.",
        "",
        "| figure | mechlens | bare evcxr | ratio |",
        "| --- | --- | --- | --- |",
    ]
    for n, v, u, p, _ in figures:
        lines.append(f"| {n} | {v:.2f} {u} | {p:.2f} {u} | {v / p:.1f}× |")
    write_section("Kernel", "\n".join(lines))
    print("\n".join(lines))


# The same phases measured on 2026-12-02 on this machine class before cells linked the
# library dynamically (each cell a 16 MB static library), before std values had a display
# impl (a numeric cell then built twice) and before kernel/cell_build.py replaced cargo after
# a kernel's first build: bench/cell_phases.py at commit f59847c.
PHASES_BEFORE = {
    "trivial cell (`i + 1`)": 1.043,
    "trivial cell without a display impl (two builds)": 1.043,
    "`let` cell (tch + polars)": 1.392,
    "build: cargo with nothing to do": 0.264,
    "build: rustc front end (--emit=metadata)": 0.069,
    "build: rustc to object code (--emit=obj, no link)": 0.117,
    "build: rustc with the link": 0.552,
    "build: cargo build of a changed cell": 0.914,
    "build: the link alone (with link − to object code)": 0.434,
    "outside the build, trivial cell (cell − its build)": 0.083,
    "outside the build, `let` cell (cell − its build)": 0.478,
}


# The same on 2026-12-02 with the shared library and std displays, cargo still building
# every cell (commit 6d20810).
PHASES_SHARED_LIBRARY = {
    "trivial cell (`i + 1`)": 0.663,
    "trivial cell without a display impl (two builds)": 0.977,
    "`let` cell (tch + polars)": 0.862,
    "build: cargo with nothing to do": 0.338,
    "build: rustc front end (--emit=metadata)": 0.076,
    "build: rustc to object code (--emit=obj, no link)": 0.081,
    "build: rustc with the link": 0.170,
    "build: cargo build of a changed cell": 0.495,
    "build: the link alone (with link − to object code)": 0.089,
    "outside the build, trivial cell (cell − its build)": 0.168,
    "outside the build, `let` cell (cell − its build)": 0.367,
}


# The same on the morning of 2026-12-04 (commit b1beb17): cells replayed rustc, evcxr was
# still stock (its rust-analyzer pass re-verified the crate graph on every cell) and the link
# still read libtorch's libraries. Its "outside the build" rows subtracted a replay of the
# last cell's source, not each cell's own build.
PHASES_BEFORE_EVCXR_PATCH = {
    "trivial cell (`i + 1`)": 0.337,
    "trivial cell without a display impl (two builds)": 0.477,
    "`let` cell (tch + polars)": 0.841,
    "build: cargo with nothing to do": 0.391,
    "build: rustc front end (--emit=metadata)": 0.100,
    "build: rustc to object code (--emit=obj, no link)": 0.144,
    "build: rustc with the link": 0.259,
    "build: cargo build of a changed cell": 0.656,
    "build: kernel/cell_build.py replay of a changed cell": 0.297,
    "build: the link alone (with link − to object code)": 0.116,
    "outside the build, trivial cell (cell − its build)": 0.040,
    "outside the build, `let` cell (cell − its build)": 0.545,
}


# What the table does not show, found on 2026-12-03 (CPU time per process sampled from /proc
# during a start; `perf record` of evcxr_jupyter; rustc -Ztime-passes on the slot's command).
PHASE_NOTES = [
    "- **A kernel's start** (~15-18 s) is ~13 s of evcxr's rust-analyzer on one core, reading the",
    "  crate graph behind `use mechlens::prelude::*` (~430 crates: `perf` shows parsing, macro",
    "  expansion and page faults of its allocator), then the prelude's build. evcxr does this at",
    "  launch, before the first cell, so a reader who reads the notebook's opening first does not",
    "  wait for it. Since 2026-12-03 kernel/launch turns off mimalloc's transparent huge pages for",
    "  evcxr: with them, ~40% of that time was the kernel zeroing 2 MiB pages (`perf`:",
    "  folio_zero_user); the first cell of a session went from 39-45 s to 23-26 s on a machine",
    "  where bare evcxr starts in 8.6 s (the bare kernel keeps mimalloc's default).",
    "- **The first `let`** costs ~10 s more, once: rust-analyzer's trait impls across the graph,",
    "  to infer the new variable's type. kernel/proxy.py runs a warm-up cell for it when evcxr is",
    "  up and no cell of the user's is waiting (\"first model cell 30 s after launch\": 1.1 s).",
    "  Run All sends its first cell at once and pays both (\"time to first model, no standby\").",
    "- **A kernel on standby** (since 2026-12-04, kernel/standby.py) pays both before anyone",
    "  asks: once a kernel has been idle 10 s, a second evcxr starts in the background, builds",
    "  the prelude and runs the warm-up cell (~25 s, ~2 GB, one warm build slot); the next",
    "  kernel takes it over. What remains of a start is the front's own launch (Python,",
    "  ~0.6 s), a cell that moves the cells' process to the notebook's folder and the first",
    "  cell (\"kernel warm start\", \"time to first model\").",
    "- **Every later `let` cell** runs that rust-analyzer pass again: evcxr needs each new",
    "  variable's type to store it between cells. Until 2026-12-04 it took 0.2-0.4 s a cell,",
    "  because evcxr put every source file (the cells' crate, ~430 dependencies, std) in one",
    "  *local* source root: each cell's edit made salsa re-verify everything the inference had",
    "  touched across the graph (`perf`: `maybe_changed_after`, `deep_verify_edges` on top).",
    "  evcxr is now built with kernel/evcxr-patches/library-roots.patch, which makes the",
    "  dependencies library roots as rust-analyzer's own loader does; evcxr's work before a",
    "  cell's build is 20-40 ms (timed around kernel/cell_build.py in a kernel).",
    "- **The build** is now nearly all of a cell's time: cargo is run once per kernel session;",
    "  later cells replay the recorded rustc command (kernel/cell_build.py, ~25 ms of Python",
    "  around rustc). Cells compile at opt-level 0: a 190-line cell of tutorial 05 took 1.03 s",
    "  in rustc at evcxr's opt-level 2 and 0.33 s at 0; for one-line cells the two are within",
    "  noise. `rustc -Ztime-passes` on a tutorial cell (0.28 s): the link 0.07 s, loading the",
    "  dependencies' metadata 0.05 s, saving the incremental state 0.04 s (without incremental",
    "  the build is slower: 0.60 against 0.46 s on tutorial 05's last cell), code generation",
    "  0.03 s. Since 2026-12-04 the link goes through kernel/cell_linker.sh, which keeps",
    "  libtorch's libraries (~900 MB that rust-lld read on every cell) out of it.",
    "- In the tutorials (`tutorial cell p50`), the median cell spends ~0.34 s in its build and",
    "  ~0.14 s in everything else, its own work included (timed in a kernel, 2026-12-04).",
    "- Timings on this shared 2-core machine move by 10-30% between runs (trivial cells measured",
    "  0.25-0.40 s on the same day).",
]


def phase_section(machine):
    """Where a cell's time goes (bench/cell_phases.py), beside the figures before."""
    rows = cell_phases.main()
    lines = [
        "## Where a cell's time goes",
        "",
        f"Measured {date.today().isoformat()} on {machine} by `bench/cell_phases.py`: cells in a kernel",
        "(medians of 10), then the build evcxr runs for a cell replayed in the same warm slot with",
        "evcxr's command and environment (medians of 5). \"Before\" is the same script before cells",
        "linked mechlens as one shared library, before std values had a display impl",
        "(then every cell ending in a number, string, Vec or Option built twice) and before",
        "kernel/cell_build.py replayed rustc instead of running cargo for each cell.",
        "",
        "\"Stock evcxr\" is the morning of 2026-12-04, cells replayed but evcxr not yet built with",
        "kernel/evcxr-patches and the link not yet through kernel/cell_linker.sh; \"shared library,",
        "cargo\" is 2026-12-02 with the shared library, cargo still building each cell.",
        "",
        "| phase | now | stock evcxr | shared library, cargo | before |",
        "| --- | --- | --- | --- | --- |",
    ]
    cell = lambda value: f"{value:.3f} s" if value is not None else ""
    for name, seconds in rows:
        lines.append(f"| {name} | {seconds:.3f} s | {cell(PHASES_BEFORE_EVCXR_PATCH.get(name))} "
                     f"| {cell(PHASES_SHARED_LIBRARY.get(name))} | {cell(PHASES_BEFORE.get(name))} |")
    lines += ["", *PHASE_NOTES]
    write_section("Where a cell's time goes", "\n".join(lines))
    print("\n".join(lines))


def cold_setup_from_ci_log(machine):
    """Cold setup is measured by CI on a clean clone (.ci/run prints "cold setup: N s");
    `make bench CI_LOG=path` records it from that log with its per-step lines."""
    log_path = os.environ.get("CI_LOG")
    if not log_path:
        return
    text = Path(log_path).read_text()
    seconds = next((int(l.split()[2]) for l in text.splitlines() if l.startswith("cold setup: ")), None)
    if seconds is None:
        sys.exit(f"no 'cold setup: N s' line in {log_path}")
    steps = [l.strip() for l in text.split("cold setup:")[0].splitlines() if l.startswith("  ")]
    write_results("setup", [{"name": "cold setup", "value": seconds, "unit": "s",
                             "peer_value": None, "peer": "goal: 1080 s (clean clone, make setup)", "date": date.today().isoformat(),
                             "machine": machine}])
    body = "\n".join([
        "## Cold setup",
        "",
        f"`make setup` on a clean clone ({machine}; crates.io and PyPI downloads already in the",
        f"local caches, as on CI's machine): **{seconds} s** ({seconds / 60:.1f} min). Goal: 18 min.",
        "",
        "```",
        *steps,
        "```",
    ])
    write_section("Cold setup", body)
    print(body)


if __name__ == "__main__":
    main()
