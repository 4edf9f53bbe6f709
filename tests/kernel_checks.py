"""Checks of the "Rust · mechlens" kernel as a notebook user meets it.

- tch, polars and plotters work in one cell, and their values display richly;
- a panic, a `?` error or a failed display is the cell's Jupyter error (so Run All stops
  there), and earlier variables survive it;
- std values (numbers, strings, Vec, Option) display as their Debug text;
- CUDA is visible inside the kernel exactly when the machine has an NVIDIA driver;
- tab completion still finds tch's and polars' names (rust-analyzer's, whose source roots
  kernel/evcxr-patches changes);
- a cell's link leaves out libtorch's libraries (kernel/cell_linker.sh) and tch still works;
- a library that does not build shows the compiler's error in the cell instead of a kernel
  that dies and restarts;
- a kernel whose heartbeat never answers still runs cells (kernel/proxy.py goes by evcxr's
  process, not by its heartbeat, which dies on a reset while evcxr starts);
- two kernels at once never share a build slot, and a freed slot is reused;
- a new build slot starts from the workspace build's compiled dependencies (kernel/seed_slot.py)
  and compiles none of them again, only mechlens' own crates and the cells;
- after a kernel's first build, a cell is built by replaying rustc (kernel/cell_build.py), and
  a `:dep` sends the next build through cargo again;
- MECHLENS_CELL_OPT_LEVEL reaches the slot's profile for cells, and a bad value is named;
- a kernel killed mid-cell leaves a slot the next kernel starts in cleanly;
- with no network, a kernel starts and `:dep` of a crate in the lock works;
- a kernel idle for a while starts a standby (kernel/standby.py), which the next kernel takes
  over (in its own working directory, with earlier variables of neither); the standby's evcxr
  ends with the kernel that took it, even when that kernel is killed;
- only a standby of the same environment and library is taken over, and only by one kernel;
  others are retired; a standby ends when the Jupyter server that started it exits, when
  mechlens' sources change, and when no warm build slot is free.

Prints "N passed, M failed" last; exits non-zero on any failure.
"""

import json
import marshal
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Each check's kernel starts from nothing; the standby checks turn standbys on for themselves.
os.environ["MECHLENS_STANDBY"] = "0"
sys.path.insert(0, str(ROOT / "kernel"))
from session import PRELUDE_CELL, PRELUDE_CELL_RESULT, KernelSession  # noqa: E402
import standby  # noqa: E402
from backend import env_fingerprint, library_fingerprint  # noqa: E402

CHECKS = []


def check(fn):
    CHECKS.append(fn)
    return fn


def expect(condition, message):
    if not condition:
        raise AssertionError(message)


# --- one warm kernel for the checks that need the real library ----------------------------


@check
def first_cell_ending_in_question_mark_uses_its_display(k):
    # Must be the session's first cell with `?`: evcxr learns that `?` is wanted from a
    # failed build, which also sent such a cell's value to Debug (the prelude prevents it).
    reply = k.run('df!("first" => &[1i64, 2])?')
    expect(reply.status == "ok", f"cell failed: {reply.error}")
    expect("<table" in reply.outputs.get("text/html", ""), f"not displayed as a table: {reply.outputs}")


@check
def tch_polars_plotters_in_one_cell(k):
    reply = k.run(textwrap.dedent("""
        let t = Tensor::arange(6, (Kind::Float, Device::Cpu)).reshape([2, 3]);
        let df = df!("x" => &[1i64, 2, 3], "y" => Vec::<f32>::try_from(t.get(1)).unwrap())?;
        let svg = svg_chart(200, 100, |root| { root.fill(&BLUE)?; Ok(()) })?;
        format!("{} {} {}", t.sum(Kind::Float).double_value(&[]), df.height(), svg.as_str().len() > 100)
    """))
    expect(reply.status == "ok", f"cell failed: {reply.error}")
    expect(reply.text == '"15 3 true"', f"unexpected result {reply.text!r}")


@check
def dataframe_renders_as_html_table(k):
    reply = k.run('df!("token" => &["<bos>", "cat"], "logit" => &[1.5f64, -0.25])?')
    expect(reply.status == "ok", f"cell failed: {reply.error}")
    html = reply.outputs.get("text/html", "")
    expect("<table" in html and "&lt;bos&gt;" in html and "-0.25" in html, f"no table: {reply.outputs}")


@check
def tensor_renders_as_summary(k):
    reply = k.run("Tensor::from_slice(&[1.0f32, 2.0, 3.0])")
    expect(reply.status == "ok", f"cell failed: {reply.error}")
    expect(reply.text == "Tensor [3] Float cpu\n[1.0, 2.0, 3.0]", f"got {reply.text!r}")


@check
def chart_renders_as_svg(k):
    reply = k.run(textwrap.dedent("""
        svg_chart(300, 200, |root| {
            let mut chart = ChartBuilder::on(root).caption("sine", ("sans-serif", 16))
                .build_cartesian_2d(0f32..6.3f32, -1f32..1f32)?;
            chart.draw_series(LineSeries::new((0..63).map(|i| (i as f32 / 10.0, (i as f32 / 10.0).sin())), &RED))?;
            Ok(())
        })?
    """))
    expect(reply.status == "ok", f"cell failed: {reply.error}")
    svg = reply.outputs.get("image/svg+xml", "")
    expect(svg.startswith("<svg") and ">sine</text>" in svg.replace("\n", "") and "<polyline" in svg, f"no chart: {reply.outputs}")


@check
def views_and_panels_render_as_one_html_block(k):
    reply = k.run(textwrap.dedent("""
        let pattern = Tensor::from_slice(&[1.0f32, 0.0, 0.5, 0.5]).reshape([1, 2, 2]);
        let view = attention_patterns(&["<s>", "cat"], &pattern)?;
        let chart = Chart::bar("b").bars(&["x", "y"], &[1.0, 2.0]);
        Panel::row().push(&view).push(&chart)
    """))
    expect(reply.status == "ok", f"cell failed: {reply.error}")
    html = reply.outputs.get("text/html", "")
    expect("mechlens-panel" in html and "mechlens-attention" in html and "<svg" in html and "&lt;s&gt;" in html,
           f"no panel with a view and a chart: {reply.outputs}")
    # A reference displays as its value, so a cell can show a variable without moving it.
    reply = k.run("&view")
    expect("mechlens-attention" in reply.outputs.get("text/html", ""), f"&view not shown: {reply.outputs}")
    reply = k.run("view.as_str().len() > 0")
    expect(reply.status == "ok" and reply.text == "true", f"view was moved by its display: {reply}")


@check
def a_final_expression_that_moves_the_cells_variable_keeps_its_display(k):
    # evcxr stores a cell's variables after its final expression; when that expression moves
    # one (`.bars(&labels, scores)`), the store fails, and evcxr used to show the value as
    # Debug text (kernel/evcxr-patches/moved-display.patch).
    reply = k.run(textwrap.dedent("""
        let scores = vec![1.0f64, 2.0];
        Chart::bar("moved").bars(&["a", "b"], scores)
    """))
    svg = reply.outputs.get("image/svg+xml", "")
    expect(reply.status == "ok" and svg.startswith("<svg"), f"a chart moving its data not drawn: {reply}")
    reply = k.run('let table = df!("x" => &[1i64, 2])?;\ntable')
    expect("<table" in reply.outputs.get("text/html", ""), f"a moved DataFrame not shown as a table: {reply}")
    # A value without a display still falls back to Debug.
    reply = k.run("let v = vec![1, 2];\nv")
    expect(reply.status == "ok" and reply.text == "[1, 2]", f"a moved Vec showed {reply}")


@check
def panic_in_library_is_an_error_and_keeps_earlier_variables(k):
    k.run("let kept = vec![1, 2, 3];")
    # tch's panicking API (as opposed to its f_* methods) panics on a shape error.
    reply = k.run("let a = Tensor::zeros([2, 3], (Kind::Float, Device::Cpu)); a.matmul(&a)")
    expect(reply.status == "error", f"a panicking cell was reported as {reply.status}: {reply}")
    expect(reply.error.startswith("Panic: ") and "cannot be multiplied" in reply.error,
           f"the panic is not the cell's error: {reply.error!r}")
    # Shown once, as the error, without std's backtrace note.
    expect("panicked at" not in reply.stderr and "RUST_BACKTRACE" not in reply.error,
           f"the panic report is shown twice or with its note: {reply}")
    reply = k.run("kept.len()")
    expect(reply.status == "ok" and reply.text == "3", f"variable lost after panic: {reply}")


@check
def question_mark_error_is_an_error_and_keeps_earlier_variables(k):
    k.run("let before = 7;")
    reply = k.run('let n: i64 = "seven".parse()?;\nn')
    expect(reply.status == "error", f"a cell whose `?` failed was reported as {reply.status}: {reply}")
    expect(reply.error.startswith("Error: ") and "invalid digit" in reply.error,
           f"the error is not the cell's error: {reply.error!r}")
    # A mechlens error through `?`, from a missing file: named in one sentence.
    reply = k.run('Sae::load(std::path::Path::new("/no/such/sae"), Device::Cpu)?;')
    expect(reply.status == "error" and "/no/such/sae" in reply.error, f"mechlens error not reported: {reply}")
    reply = k.run("before + 1")
    expect(reply.status == "ok" and reply.text == "8", f"variable lost after an error: {reply}")


@check
def failed_display_is_an_error(k):
    # A heatmap whose labels do not fit its data cannot be drawn.
    reply = k.run('Heatmap::new(&Tensor::zeros([2, 2], (Kind::Float, Device::Cpu))).x_labels(&["only one"])')
    expect(reply.status == "error" and reply.error.startswith("DisplayError: "),
           f"a display that failed was reported as {reply.status}: {reply}")


@check
def std_values_display_as_debug_text(k):
    for code, text in [("20 + 1", "21"), ('vec![1, 2]', "[1, 2]"), ('Some("a")', 'Some("a")'),
                       ('String::from("x")', '"x"'), ("(1, 2.5)", "(1, 2.5)")]:
        reply = k.run(code)
        expect(reply.status == "ok" and reply.text == text, f"{code} showed {reply}")


@check
def cuda_visible_exactly_when_a_driver_is_present(k):
    has_driver = Path("/proc/driver/nvidia/version").exists()
    reply = k.run("tch::Cuda::is_available()")
    expect(reply.status == "ok", f"cell failed: {reply.error}")
    expect(reply.text == str(has_driver).lower(), f"driver present: {has_driver}, tch says {reply.text}")


@check
def cells_are_built_by_replay_and_a_dep_goes_through_cargo(k):
    slot = k.run('std::env::var("EVCXR_TMPDIR").unwrap()')
    expect(slot.status == "ok", f"cell failed: {slot.error}")
    last = Path(slot.text.strip('"'), "target", "mechlens-cell-build.last")

    def built_by(code, result):
        reply = k.run(code)
        expect(reply.status == "ok" and reply.text == result, f"{code}: {reply.text!r} {reply.error}")
        return last.read_text()

    expect(built_by("40 + 2", "42") == "replay", "a plain cell went through cargo")
    expect(built_by("let replayed = 7 * 6; replayed", "42") == "replay", "a let cell went through cargo")
    last.unlink()
    dep = k.run(':dep either = "1"')
    expect(dep.status == "ok", f":dep failed: {dep.error}")
    # evcxr builds the crate with its new dependency as part of `:dep` itself.
    expect(last.exists() and last.read_text() == "cargo", ":dep did not build through cargo")
    built_by("either::Either::<i32, i32>::Left(replayed).is_left()", "true")
    expect(built_by("replayed + 1", "43") == "replay", "cells after :dep were not replayed")


@check
def completion_finds_the_libraries_names(k):
    """Tab completion is rust-analyzer's, whose source roots kernel/evcxr-patches changes: it
    still completes tch's and polars' methods on a cell's variables, and associated functions."""
    reply = k.run('let completed = Tensor::zeros([2], (Kind::Float, Device::Cpu)); let frame = df!("x" => &[1i64])?;')
    expect(reply.status == "ok", f"cell failed: {reply.error}")
    for code, expected in [("completed.sum_d", "sum_dim_intlist"), ("frame.hei", "height"),
                           ("Tensor::zer", "zeros")]:
        msg_id = k.client.complete(code, len(code))
        deadline = time.monotonic() + 60
        matches = None
        while matches is None and time.monotonic() < deadline:
            answer = k.client.get_shell_msg(timeout=60)
            if answer["parent_header"].get("msg_id") == msg_id:
                matches = answer["content"].get("matches", [])
        expect(matches is not None, f"no completion reply for {code!r}")
        expect(any(m.startswith(expected) for m in matches), f"{code!r} completed to {matches}, not {expected}")


@check
def cells_link_without_libtorchs_libraries(k):
    """kernel/cell_linker.sh drops libtorch's `-l` flags from a cell's link, keeps every other
    argument, and tch still works in a replayed cell (through libmechlens.so)."""
    slot = k.run('std::env::var("EVCXR_TMPDIR").unwrap()')
    expect(slot.status == "ok", f"cell failed: {slot.error}")
    target = Path(slot.text.strip('"'), "target")
    reply = k.run("Tensor::from_slice(&[1.5f64, 2.0, 4.0]).sum(Kind::Double).double_value(&[])")
    expect(reply.status == "ok" and reply.text == "7.5", f"tch cell: {reply.text!r} {reply.error}")
    expect((target / "mechlens-cell-build.last").read_text() == "replay", "the tch cell went through cargo")
    state = marshal.loads((target / "mechlens-cell-build.state").read_bytes())
    argv = state["rustc"][0]
    expect(any(a.endswith("/cell_linker.sh") for a in argv), f"the cell's rustc has no cell linker: {argv}")
    # What the linker gets from rustc, and what cell_linker.sh passes on to the compiler driver.
    libtorch = state["rustc"][1].get("LIBTORCH")
    expect(libtorch and Path(libtorch, "lib", "libtorch_cpu.so").exists(), f"no libtorch at LIBTORCH={libtorch}")
    with tempfile.TemporaryDirectory() as tmp:
        driver = Path(tmp, "driver")
        driver.write_text('#!/bin/sh\nprintf "%s\\n" "$@"\n')
        driver.chmod(0o755)
        passed = subprocess.run(
            [str(ROOT / "kernel" / "cell_linker.sh"), "-Wl,--as-needed", "cell.o", "-lstdc++", "-ltorch_cpu",
             "-ltorch", "-lc10", "-lm", "-o", "my lib.so"],
            env={**os.environ, "LIBTORCH": libtorch, "MECHLENS_CELL_CC": str(driver)},
            capture_output=True, text=True).stdout.splitlines()
    expect(passed == ["-Wl,--as-needed", "cell.o", "-lstdc++", "-lm", "-o", "my lib.so"],
           f"cell_linker.sh passed on {passed}")


# --- checks with their own kernel or launcher ----------------------------------------------


def broken_library_shows_compiler_error():
    with tempfile.TemporaryDirectory() as tmp:
        crate = Path(tmp, "mechlens")
        (crate / "src").mkdir(parents=True)
        (crate / "Cargo.toml").write_text('[package]\nname = "mechlens"\nversion = "0.0.0"\nedition = "2021"\n')
        (crate / "src" / "lib.rs").write_text("pub mod prelude {}\npub fn broken() -> u32 { \"not a number\" }\n")
        env = {"MECHLENS_CRATE": str(crate), "MECHLENS_SLOTS_DIR": str(Path(tmp, "slots"))}
        with KernelSession(env=env, startup_timeout=300) as k:
            reply = k.run("1 + 1", timeout=60)
    shown = reply.error + reply.stderr
    expect(reply.status == "error", "a cell ran although the library does not build")
    expect("mismatched types" in shown and "lib.rs" in shown, f"compiler error not shown: {shown!r}")


def a_kernel_without_a_heartbeat_still_runs_cells():
    with tempfile.TemporaryDirectory() as tmp:
        # evcxr listens for heartbeats on another port than the connection file the front
        # reads names, so that no ping it sends is ever answered.
        launcher = Path(tmp, "launch-with-another-heartbeat")
        launcher.write_text(textwrap.dedent(f"""\
            #!/bin/sh
            "{sys.executable}" - "$1" "$1.evcxr" <<'EOF'
            import json, socket, sys
            info = json.load(open(sys.argv[1]))
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                info["hb_port"] = s.getsockname()[1]
            json.dump(info, open(sys.argv[2], "w"))
            EOF
            exec "{ROOT / 'kernel' / 'launch'}" "$1.evcxr"
            """))
        launcher.chmod(0o755)
        with KernelSession(env={"MECHLENS_LAUNCH": str(launcher)}) as k:
            reply = k.run("40 + 2", timeout=300)
        expect(reply.status == "ok" and reply.text == "42", f"no answer without a heartbeat: {reply.error}")


def two_kernels_get_different_slots_and_reuse_them():
    with tempfile.TemporaryDirectory() as tmp:
        stub = Path(tmp, "fake-evcxr")
        # Stands in for evcxr_jupyter: reports its build dir, then waits to be stopped.
        stub.write_text('#!/bin/sh\necho "$EVCXR_TMPDIR" > "$REPORT"\nwhile [ ! -e "$STOP" ]; do sleep 0.05; done\n')
        stub.chmod(0o755)
        base = dict(os.environ, MECHLENS_EVCXR=str(stub), MECHLENS_SLOTS_DIR=str(Path(tmp, "slots")),
                    MECHLENS_SLOT_POOL="2", STOP=str(Path(tmp, "stop")))

        def launch(n):
            env = dict(base, REPORT=str(Path(tmp, f"report-{n}")))
            proc = subprocess.Popen([str(ROOT / "kernel" / "launch"), "unused.json"], env=env,
                                    stderr=subprocess.PIPE, text=True)
            report = Path(env["REPORT"])
            deadline = time.monotonic() + 20
            while not report.exists() or not report.read_text().strip():
                expect(time.monotonic() < deadline, f"launcher {n} never started the kernel")
                time.sleep(0.05)
            return proc, report.read_text().strip()

        (p1, d1), (p2, d2), (p3, d3) = launch(1), launch(2), launch(3)
        expect(d1.endswith("slot-0/build") and d2.endswith("slot-1/build"), f"slots: {d1}, {d2}")
        expect("overflow-" in d3, f"a third kernel with a pool of 2 got {d3}")
        Path(base["STOP"]).touch()
        warnings = [p.communicate(timeout=20)[1] for p in (p1, p2, p3)]
        expect("slots are busy" in warnings[2], f"no warning for the overflow kernel: {warnings[2]!r}")
        expect(not Path(d3).parent.exists(), "the overflow dir was not removed")
        Path(base["STOP"]).unlink()
        p4, d4 = launch(4)
        Path(base["STOP"]).touch()
        p4.wait(timeout=20)
        expect(d4 == d1, f"a freed slot was not reused: {d4}")


def a_new_slot_compiles_no_dependency_of_the_workspace_again():
    # Under the checkout, as the kernel's own slots are (cargo finds .cargo/config.toml there).
    (ROOT / ".cache").mkdir(exist_ok=True)
    workspace_deps = ROOT / "target" / "debug" / "deps"
    with tempfile.TemporaryDirectory(dir=ROOT / ".cache", prefix="check-slots-") as tmp:
        with KernelSession(env={"MECHLENS_SLOTS_DIR": tmp}, startup_timeout=600) as k:
            # Long enough for mechlens' crates; compiling every dependency takes ~12 min.
            reply = k.run(PRELUDE_CELL, timeout=600)
        expect(reply.status == "ok" and reply.text == PRELUDE_CELL_RESULT, f"first cell: {reply.error}")
        slot_deps = Path(tmp, "slot-0", "build", "target", "debug", "deps")
        compiled = []
        for built in slot_deps.iterdir():
            if not built.name.endswith(".rlib"):
                continue
            shared = workspace_deps / built.name
            if not (shared.exists() and shared.stat().st_ino == built.stat().st_ino):
                compiled.append(built.name.split("-")[0].removeprefix("lib"))
        expect(compiled, "the slot compiled nothing, not even mechlens")
        foreign = sorted(c for c in compiled if not c.startswith(("mechlens", "ctx")))
        expect(not foreign, f"the slot compiled dependencies the workspace build had: {foreign}")


def cell_opt_level_reaches_the_slot_and_a_bad_one_is_named():
    with tempfile.TemporaryDirectory() as tmp:
        stub = Path(tmp, "fake-evcxr")
        # Stands in for evcxr_jupyter: copies the slot's workspace manifest, then exits.
        stub.write_text('#!/bin/sh\ncp "$EVCXR_TMPDIR/../Cargo.toml" "$REPORT"\n')
        stub.chmod(0o755)
        for value, expected, warned in (("2", "opt-level = 2", False), ("fast", "opt-level = 0", True)):
            report = Path(tmp, f"report-{value}")
            env = dict(os.environ, MECHLENS_EVCXR=str(stub), MECHLENS_SLOTS_DIR=str(Path(tmp, "slots")),
                       MECHLENS_CELL_OPT_LEVEL=value, REPORT=str(report))
            run = subprocess.run([str(ROOT / "kernel" / "launch"), "unused.json"], env=env,
                                 capture_output=True, text=True, timeout=60)
            cells = report.read_text().split("[profile.dev.package.ctx]")[1]
            expect(expected in cells, f"MECHLENS_CELL_OPT_LEVEL={value}: {cells!r}")
            expect(("not an optimisation level" in run.stderr) == warned, f"stderr: {run.stderr!r}")


def kernel_killed_mid_cell_leaves_a_working_slot():
    # Killed while a cell runs, and while the first cell builds: each time a new kernel takes
    # the freed slot (the same one) and works.
    for wait_s, cell in ((8.0, "std::thread::sleep(std::time::Duration::from_secs(60));"),
                         (2.0, PRELUDE_CELL)):
        k = KernelSession().__enter__()
        try:
            k.run(PRELUDE_CELL)
            k.client.execute(cell)
            time.sleep(wait_s)
        finally:
            k.client.stop_channels()
            k.manager.shutdown_kernel(now=True)  # SIGKILL to its process group, as Jupyter kills
        with KernelSession() as fresh:
            reply = fresh.run(PRELUDE_CELL)
            expect(reply.status == "ok" and reply.text == PRELUDE_CELL_RESULT,
                   f"after a kill: {reply.error}")
            reply = fresh.run("let after_kill = 2; after_kill + 1")
            expect(reply.status == "ok" and reply.text == "3", f"after a kill: {reply.error}")


def no_network_kernel_starts_and_adds_a_dep_from_the_lock():
    # No network, as far as cargo can tell: every request goes to a proxy that refuses it.
    closed = "http://127.0.0.1:9"
    env = {"CARGO_HTTP_PROXY": closed, "HTTPS_PROXY": closed, "HTTP_PROXY": closed,
           "ALL_PROXY": closed, "CARGO_NET_RETRY": "0"}
    with KernelSession(env=env) as k:
        reply = k.run(PRELUDE_CELL, timeout=300)
        expect(reply.status == "ok", f"prelude failed offline: {reply.error}")
        reply = k.run(':dep either = "1"', timeout=300)
        expect(reply.status == "ok", f":dep of a crate in the lock failed offline: {reply.error}")
        reply = k.run("either::Either::<u8, u8>::Right(1).is_right()", timeout=300)
        expect(reply.status == "ok" and reply.text == "true", f"offline: {reply.text} {reply.error}")


def wait_for(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while not condition():
        expect(time.monotonic() < deadline, f"{what} within {timeout} s")
        time.sleep(0.2)


def standby_is_taken_over_by_the_next_kernel_and_ends_with_it():
    with tempfile.TemporaryDirectory() as tmp:
        env = {"MECHLENS_STANDBY": "1", "MECHLENS_STANDBY_DIR": str(Path(tmp, "standby")),
               "MECHLENS_STANDBY_AFTER_IDLE_S": "1"}
        saved = {name: os.environ.get(name) for name in env}
        os.environ.update(env)  # for standby.standbys() here
        try:
            with KernelSession(env=env) as first:
                expect(first.run("let in_first = 1; in_first").text == "1", "first kernel")
                ready = lambda: [i for _, i in standby.standbys() if i["state"] == "ready"]
                wait_for(ready, 600, "a standby ready after the kernel went idle")
                waiting = ready()[0]
                expect(waiting["cwd"] == os.getcwd(), f"standby in {waiting['cwd']}")
                second = KernelSession(env=env, cwd=tmp).__enter__()
                try:
                    reply = second.run(PRELUDE_CELL)
                    expect(reply.status == "ok" and reply.text == PRELUDE_CELL_RESULT, reply.error)
                    owner = (Path(waiting["folder"]) / "claim").read_text()
                    expect(owner == str(second.manager.provisioner.process.pid),
                           f"standby claimed by {owner!r}, not the second kernel")
                    reply = second.run("std::env::current_dir()?")
                    expect(tmp in reply.text, f"cells of the taken-over kernel run in {reply.text}")
                    reply = second.run("let in_second = 41; in_second + 1")
                    expect(reply.text == "42", f"a let in the taken-over kernel: {reply.error}")
                    reply = second.run("in_first")
                    expect(reply.status == "error", "the first kernel's variable is in the second")
                finally:
                    second.client.stop_channels()
                    second.manager.shutdown_kernel(now=True)  # SIGKILL, as Jupyter kills
                wait_for(lambda: not standby.pid_alive(waiting["pid"]), 30,
                         "the standby and its evcxr end with their killed owner")
                wait_for(lambda: not group_alive(waiting["pid"]), 10,
                         "every process of the standby's evcxr ends with it")
                expect(first.run("in_first + 1").text == "2", "the first kernel after the second's kill")
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name)
                else:
                    os.environ[name] = value
            pids = standby.retire_all({"MECHLENS_STANDBY_DIR": env["MECHLENS_STANDBY_DIR"]})
            for pid in pids:
                wait_for(lambda: not standby.pid_alive(pid), 30, "a retired standby ends")


def group_alive(pgid):
    """Whether a process of group `pgid` still runs (zombies, which only wait to be reaped, not counted)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def fake_standby(root, name, state, env=None, library=None, pid=None):
    """A standby's folder as standby.py writes it, for a process that stands in for it."""
    folder = Path(root, name)
    folder.mkdir(parents=True)
    proc = None
    if pid is None:
        proc = subprocess.Popen(["sleep", "60"])
        pid = proc.pid
    info = {"pid": pid, "state": state, "cwd": "/", "folder": str(folder),
            "connection_file": str(folder / "connection.json"),
            "env": env or env_fingerprint(), "library": library or library_fingerprint()}
    (folder / "info.json").write_text(json.dumps(info))
    return folder, proc


def only_a_matching_standby_is_taken_and_only_once():
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, MECHLENS_STANDBY_DIR=tmp)
        procs = []
        try:
            other_env, p1 = fake_standby(tmp, "other-env", "ready", env="0" * 16)
            stale, p2 = fake_standby(tmp, "stale-library", "ready", library="0" * 16)
            good, p3 = fake_standby(tmp, "good", "ready")
            dead, _ = fake_standby(tmp, "dead", "ready", pid=2 ** 22 + 17)
            procs = [p1, p2, p3]
            taken, warming, retired = standby.claim(1234, library_fingerprint(env), env)
            expect(taken is not None and taken["folder"] == str(good), f"taken: {taken}")
            expect((good / "claim").read_text() == "1234", "the claim does not name its owner")
            expect(warming is None, f"warming: {warming}")
            expect(sorted(retired) == sorted([p1.pid, p2.pid]), f"retired {retired}")
            for folder in (other_env, stale):
                expect((folder / "claim").read_text() == standby.RETIRE, f"{folder.name} not retired")
            expect(not dead.exists(), "a dead standby's folder was left")
            again = standby.claim(5678, library_fingerprint(env), env)
            expect(again == (None, None, []), f"a second kernel got {again}")
            (good / "claim").unlink()
            expect(standby.take(good, 9) is not None and standby.take(good, 10) is None,
                   "take() is not exclusive")
            warm, p4 = fake_standby(tmp, "warming", "warming")
            procs.append(p4)
            taken, warming, _ = standby.claim(1234, library_fingerprint(env), env)
            expect(taken is None and warming is not None and warming["folder"] == str(warm),
                   f"a warming standby: taken {taken}, warming {warming}")
            expect(standby.state_of(warm) == "warming", "state of a warming standby")
        finally:
            for proc in procs:
                proc.kill()
                proc.wait()


def standby_ends_with_its_server_on_a_source_change_and_without_a_warm_slot():
    with tempfile.TemporaryDirectory() as tmp:
        stub = Path(tmp, "fake-evcxr")
        # Stands in for evcxr_jupyter: never answers, so the standby keeps warming up.
        stub.write_text("#!/bin/sh\nsleep 600\n")
        stub.chmod(0o755)
        crate = Path(tmp, "crate")
        (crate / "src").mkdir(parents=True)
        (crate / "Cargo.toml").write_text('[package]\nname = "mechlens"\n')
        (crate / "src" / "lib.rs").write_text("")
        slots = Path(tmp, "slots")
        (slots / "slot-0" / "build" / "target" / "debug" / "deps").mkdir(parents=True)
        env = dict(os.environ, MECHLENS_EVCXR=str(stub), MECHLENS_SLOTS_DIR=str(slots),
                   MECHLENS_SLOT_POOL="1", MECHLENS_STANDBY_DIR=str(Path(tmp, "standby")),
                   MECHLENS_CRATE=str(crate), MECHLENS_STANDBY="1")
        log = Path(tmp, "standby", "standby.log")

        def start(server_pid):
            standby.spawn(tmp, server_pid, env)
            wait_for(lambda: standby.standbys(env), 30, "a standby started")
            return standby.standbys(env)[0][1]["pid"]

        def ends(pid, reason):
            wait_for(lambda: not standby.pid_alive(pid), 30, f"a standby ends when {reason}")
            expect(reason in log.read_text(), f"log does not say {reason!r}: {log.read_text()}")

        server = subprocess.Popen(["sleep", "600"])
        pid = start(server.pid)
        running = lambda: subprocess.run(["pgrep", "-f", str(stub)], capture_output=True).stdout != b""
        wait_for(running, 30, "the standby's (stub) evcxr started")
        server.kill()
        server.wait()
        ends(pid, f"the Jupyter server {server.pid} that started it is gone")
        wait_for(lambda: not running(), 10, "the standby's (stub) evcxr ends with it")

        pid = start(os.getpid())
        time.sleep(1)
        (crate / "src" / "lib.rs").write_text("pub fn changed() {}\n")
        ends(pid, "mechlens' sources changed")

        # The one warm slot is held (as by a kernel): the standby does not take a cold one.
        holder = subprocess.Popen(["flock", str(slots / "slot-0.lock"), "sleep", "600"])
        try:
            time.sleep(0.5)
            standby.spawn(tmp, os.getpid(), env)
            # It can end before a poll sees it alive: wait for what it logs, then for no standby.
            reason = "no warm build slot was free"
            wait_for(lambda: reason in log.read_text(), 30, f"a standby logs that {reason}")
            wait_for(lambda: not standby.standbys(env), 10, "no standby is left")
        finally:
            holder.kill()
            holder.wait()


def main() -> int:
    results = []

    def record(name, fn, *args):
        try:
            fn(*args)
            results.append(True)
            print(f"ok      {name}")
        except Exception:
            results.append(False)
            print(f"FAILED  {name}\n{traceback.format_exc()}")

    with KernelSession() as k:
        print(f"kernel started in {k.startup_seconds:.1f} s")
        for fn in CHECKS:
            record(fn.__name__, fn, k)
    record("broken_library_shows_compiler_error", broken_library_shows_compiler_error)
    record("a_kernel_without_a_heartbeat_still_runs_cells", a_kernel_without_a_heartbeat_still_runs_cells)
    record("two_kernels_get_different_slots_and_reuse_them", two_kernels_get_different_slots_and_reuse_them)
    record("a_new_slot_compiles_no_dependency_of_the_workspace_again",
           a_new_slot_compiles_no_dependency_of_the_workspace_again)
    record("cell_opt_level_reaches_the_slot_and_a_bad_one_is_named",
           cell_opt_level_reaches_the_slot_and_a_bad_one_is_named)
    record("kernel_killed_mid_cell_leaves_a_working_slot", kernel_killed_mid_cell_leaves_a_working_slot)
    record("no_network_kernel_starts_and_adds_a_dep_from_the_lock",
           no_network_kernel_starts_and_adds_a_dep_from_the_lock)
    record("only_a_matching_standby_is_taken_and_only_once", only_a_matching_standby_is_taken_and_only_once)
    record("standby_ends_with_its_server_on_a_source_change_and_without_a_warm_slot",
           standby_ends_with_its_server_on_a_source_change_and_without_a_warm_slot)
    record("standby_is_taken_over_by_the_next_kernel_and_ends_with_it",
           standby_is_taken_over_by_the_next_kernel_and_ends_with_it)
    passed = sum(results)
    print(f"{passed} passed, {len(results) - passed} failed")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
