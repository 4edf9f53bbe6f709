"""Executes every notebook under notebooks/ headless with the "Rust · mechlens" kernel.

A cell error or panic fails the run and names the notebook and the cell. Executed copies,
outputs included, are saved under target/notebooks/ for a person (or the browser test) to
look at.
Each notebook runs with its working directory in a new temporary folder outside the
checkout (nothing of this machine beside it), as a user's copy of it would: it reads
its data through mechlens::datasets, which finds the checkout's datasets/ by itself.
A notebook may list in its metadata, under "mechlens": {"expect_outputs": [...]}, MIME types
that its saved outputs must contain (a table, a chart), so that a cell that silently stopped
displaying is caught too, and {"budget_s": N}, the seconds it should take here (2 cores):
each run prints its time against the budget, and a run past twice the budget (three times
when notebooks run side by side, which can stretch one by up to ~1.8x) fails: a runaway, not
noise, since CI's whole run must stay inside its limit.

A learner's exercise notebook (metadata "role": "learner") runs as handed out, every
exercise still `todo!()`: it must run to its end with the kernel alive, each check must say
"NOT DONE YET", and the only errors allowed are cells that call an unfinished function.

Notebooks run two at a time (MECHLENS_NOTEBOOK_JOBS sets how many; 1 for one after another):
a kernel's start and a cell's build are mostly one thread of rust-analyzer and rustc, so two
side by side take about two thirds of the time of one after the other on 2 cores. Each gets
its own warm build slot (setup keeps two), and libtorch one thread per kernel
(OMP_NUM_THREADS=1, unless set), so that two kernels' thread pools do not fight over the
cores. A notebook's time against its budget is then its time beside another.

Usage: run_notebooks.py [NOTEBOOK...]   (default: all of notebooks/)
"""

import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "target" / "notebooks"
CELL_TIMEOUT_S = 900
STARTUP_TIMEOUT_S = 1800  # a cold build slot compiles tch and polars first


def saved_mime_types(nb) -> set:
    types = set()
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            types.update(output.get("data", {}).keys())
    return types


def first_panic(nb) -> str | None:
    """A panic (a failed assert! too) or an error returned by `?` is the cell's error (the
    kernel reports it so). Text a cell writes to stderr is a failure of that cell too (a
    warning nobody reads), unless the cell is tagged `stderr-ok`."""
    for index, cell in enumerate(nb.cells):
        if "stderr-ok" in cell.get("metadata", {}).get("tags", []):
            continue
        text = "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("name") == "stderr")
        if text.strip():
            kind = "panicked" if "panicked at" in text else "wrote an error"
            return f"cell {index} {kind}:\n{text.strip()[:2000]}"
    return None


def learner_problems(nb) -> str | None:
    """A learner's notebook (exercises/, every body `todo!()`) must run to its end with the
    kernel alive, every check reporting "not done yet", and no error but those of cells that
    call an unfinished function (a `todo!()` panic, reported as the cell's error)."""
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        if cell.get("execution_count") is None:
            return f"cell {index} never ran (did the kernel die before it?)"
        outputs = cell.get("outputs", [])
        text = "".join(
            "".join(o.get("text", "")) + "".join(o.get("data", {}).get("text/plain", ""))
            for o in outputs
        )
        errors = [o for o in outputs if o.get("output_type") == "error"]
        for e in errors:
            message = f"{e.get('ename', '')}: {e.get('evalue', '')}\n" + "\n".join(e.get("traceback", []))
            if "not yet implemented" not in message:
                return f"cell {index} failed, and not because an exercise is unfinished:\n{message[:2000]}"
        if "".join(cell.source).lstrip().startswith("check::"):
            if "NOT DONE YET" not in text or errors:
                return f"cell {index} is a check of an unfinished exercise, but did not report it not done:\n{text[:2000]}"
    return None


def run(path: Path, kernel_env: dict | None = None) -> str | None:
    """Runs one notebook (its kernel with `kernel_env`, if given); returns None when it passed,
    else what went wrong."""
    nb = nbformat.read(path, as_version=4)
    workdir = tempfile.mkdtemp(prefix="mechlens-notebook-")
    learner = nb.metadata.get("mechlens", {}).get("role") == "learner"
    client = NotebookClient(
        nb,
        kernel_name="mechlens",
        timeout=CELL_TIMEOUT_S,
        startup_timeout=STARTUP_TIMEOUT_S,
        resources={"metadata": {"path": workdir}},
        # A learner's notebook is run as handed out, every exercise still `todo!()`: cells
        # that call an unfinished function fail, and the run goes on (see learner_problems).
        allow_errors=learner,
    )
    error = None
    try:
        client.execute(**({"env": kernel_env} if kernel_env else {}))
    except CellExecutionError as e:
        cell_index = next(
            (i for i, c in enumerate(nb.cells) if any(o.get("output_type") == "error" for o in c.get("outputs", []))),
            None,
        )
        where = f"cell {cell_index}" if cell_index is not None else "a cell"
        error = f"{where} failed:\n{e}"
        # evcxr's own errors (a variable it cannot keep between cells, a compile error) come
        # as the error output's value, which nbclient's message leaves out: name it.
        if cell_index is not None:
            for o in nb.cells[cell_index].get("outputs", []):
                if o.get("output_type") == "error" and o.get("evalue"):
                    error += f"\nthe kernel said: {o.get('ename', 'Error')}: {o['evalue']}"
    except Exception as e:  # the kernel died or timed out: still a named failure
        error = f"did not run: {type(e).__name__}: {e}"
    shutil.rmtree(workdir, ignore_errors=True)
    out = OUT / path.relative_to(ROOT / "notebooks")
    out.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, out)
    # A panic drops the variables of its cell, so a later "not found in this scope" is only
    # its consequence: report the panic first.
    panic = first_panic(nb)
    if panic is not None:
        error = panic if error is None else f"{panic}\n\n(then {error})"
    if error is None and learner:
        error = learner_problems(nb)
    if error is None:
        missing = set(nb.metadata.get("mechlens", {}).get("expect_outputs", [])) - saved_mime_types(nb)
        if missing:
            error = f"ran, but its outputs lack {sorted(missing)}"
    return error


def jobs() -> int:
    """How many notebooks run at once: MECHLENS_NOTEBOOK_JOBS, else 2 where there are two cores."""
    value = os.environ.get("MECHLENS_NOTEBOOK_JOBS", "")
    if value.strip():
        try:
            return max(1, int(value))
        except ValueError:
            sys.exit(f"MECHLENS_NOTEBOOK_JOBS={value!r} is not a number of notebooks to run at once (1, 2, ...)")
    return 2 if (os.cpu_count() or 1) >= 2 else 1


def timed_run(path: Path, parallel: bool) -> tuple[str | None, float, float | None]:
    """Runs one notebook and judges its time; returns (error, seconds, its budget)."""
    env = None
    if parallel:
        env = dict(os.environ)
        env.setdefault("OMP_NUM_THREADS", "1")
    start = time.monotonic()
    error = run(path, env)
    seconds = time.monotonic() - start
    budget = nbformat.read(path, as_version=4).metadata.get("mechlens", {}).get("budget_s")
    limit = 3 if parallel else 2
    if error is None and budget is not None and seconds > limit * budget:
        error = f"took {seconds:.0f} s, more than {limit} times its budget of {budget} s"
    return error, seconds, budget


def main() -> int:
    paths = [Path(p).resolve() for p in sys.argv[1:]] or sorted(
        p for p in (ROOT / "notebooks").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts
    )
    n_jobs = min(jobs(), max(1, len(paths)))
    passed = failed = 0
    with ProcessPoolExecutor(max_workers=n_jobs) as pool:
        futures = [(path, pool.submit(timed_run, path, n_jobs > 1)) for path in paths]
        for path, future in futures:
            name = path.relative_to(ROOT)
            error, seconds, budget = future.result()
            of_budget = f" of a {budget} s budget" if budget is not None else ""
            if error is None:
                passed += 1
                print(f"ok      {name} ({seconds:.1f} s{of_budget})", flush=True)
            else:
                failed += 1
                print(f"FAILED  {name} ({seconds:.1f} s): {error}", flush=True)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed or not paths else 0


if __name__ == "__main__":
    sys.exit(main())
