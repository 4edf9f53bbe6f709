"""The committed notebooks are their own source: edited in JupyterLab (or as JSON), never
generated, except the exercise sets' (notebooks/exercises/), which scripts/exercises.py
builds from notebooks/exercises/sources/ and checks for drift. This checks what a reviewer
reads in all of them:

- no outputs and no execution counts are committed (the executed copies live in
  target/notebooks/, written by run_notebooks.py);
- every Rust cell is formatted as rustfmt formats it (a cell is a function body to rustfmt:
  statements, items and a last expression);
- cells of evcxr commands (`:dep ...`) are left as they are;
- every cell has an id, as nbformat 4.5 requires (`--fix` gives it one derived from the
  notebook's name and the cell's place, so a rerun gives the same).

Usage: notebook_sources.py [--fix] [NOTEBOOK...]   (default: every notebook under notebooks/)
  --fix   clears outputs, formats the cells and gives ids in place instead of failing.
Ends with "N passed, M failed" (one per notebook), which `make test` counts.
"""

import hashlib
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Cells are read at the kernel's edition; the wrapper's indent is taken off again after.
EDITION = "2024"
WRAP_HEAD = "fn __cell() {\n"
INDENT = "    "


def rustfmt_cell(source: str) -> str:
    """The cell as rustfmt lays it out, or raises ValueError with rustfmt's complaint."""
    wrapped = WRAP_HEAD + "".join(INDENT + line if line.strip() else line for line in source.splitlines(True)) + "\n}\n"
    proc = subprocess.run(
        ["rustfmt", "--edition", EDITION, "--emit", "stdout", "--quiet"],
        input=wrapped,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise ValueError(proc.stderr.strip() or "rustfmt failed")
    lines = proc.stdout.splitlines()
    if not lines or lines[0] != WRAP_HEAD.strip() or lines[-1] != "}":
        raise ValueError("rustfmt did not keep the cell in one function body")
    body = [line[len(INDENT):] if line.startswith(INDENT) else line for line in lines[1:-1]]
    return "\n".join(body)


def source_text(cell) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def set_source(cell, text: str) -> None:
    # nbformat's on-disk layout: a list of lines, each but the last ending in "\n".
    lines = text.splitlines(True)
    cell["source"] = lines


def new_id(path: Path, index: int, taken: set[str]) -> str:
    """A cell id that is the same each time --fix runs on the same notebook, and not in
    `taken` (to which it is added)."""
    salt = 0
    while True:
        candidate = hashlib.sha1(f"{path.name}:{index}:{salt}".encode()).hexdigest()[:8]
        if candidate not in taken:
            taken.add(candidate)
            return candidate
        salt += 1


def check(path: Path, fix: bool) -> list[str]:
    """What is wrong with one notebook (empty when nothing); with `fix`, mends it instead."""
    nb = json.loads(path.read_text())
    problems = []
    changed = False
    ids = {cell["id"] for cell in nb.get("cells", []) if cell.get("id")}
    for index, cell in enumerate(nb.get("cells", [])):
        if not cell.get("id"):
            problems.append(f"cell {index} has no id (nbformat 4.5 requires one)")
            cell["id"] = new_id(path, index, ids)
            changed = True
        if cell.get("cell_type") != "code":
            continue
        if cell.get("outputs") or cell.get("execution_count") is not None:
            problems.append(f"cell {index} has committed outputs or an execution count")
            cell["outputs"], cell["execution_count"] = [], None
            changed = True
        text = source_text(cell)
        if any(line.startswith(":") for line in text.splitlines()):
            continue  # evcxr commands are not Rust
        try:
            formatted = rustfmt_cell(text)
        except ValueError as e:
            problems.append(f"cell {index} does not parse as Rust: {e}")
            continue
        if formatted != text.rstrip("\n"):
            problems.append(f"cell {index} is not rustfmt-formatted")
            set_source(cell, formatted)
            changed = True
    if fix and changed:
        path.write_text(json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
    return problems


def self_test() -> None:
    """The check must catch what it is for: a committed output, an unformatted cell, a cell
    that is not Rust; and it must leave a formatted cell and a `:dep` cell alone."""
    import tempfile

    cells = [
        {"cell_type": "code", "source": ["let x = 1;\n", "x + 1"], "outputs": [], "execution_count": None, "metadata": {}},
        {"cell_type": "code", "source": [":dep either = \"1\""], "outputs": [], "execution_count": None, "metadata": {}},
        {"cell_type": "code", "source": ["let  y=2;"], "outputs": [], "execution_count": None, "metadata": {}},
        {"cell_type": "code", "source": ["1"], "outputs": [{"output_type": "stream", "name": "stdout", "text": "1"}], "execution_count": 3, "metadata": {}},
        {"cell_type": "code", "source": ["let = ;"], "outputs": [], "execution_count": None, "metadata": {}},
        {"cell_type": "markdown", "source": ["no id"], "metadata": {}},
    ]
    for index, cell in enumerate(cells[:-1]):
        cell["id"] = f"cell{index}"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t.ipynb"
        path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
        found = check(path, fix=False)
    expected = [
        "cell 2 is not rustfmt-formatted",
        "cell 3 has committed outputs or an execution count",
        "cell 4 does not parse as Rust",
        "cell 5 has no id",
    ]
    if len(found) != len(expected) or not all(f.startswith(e) for f, e in zip(found, expected)):
        sys.exit(f"notebook_sources.py's own check is broken: expected {expected}, found {found}")


def main(argv: list[str]) -> int:
    self_test()
    fix = "--fix" in argv
    paths = [Path(a) for a in argv if a != "--fix"] or sorted((ROOT / "notebooks").rglob("*.ipynb"))
    paths = [p for p in paths if ".ipynb_checkpoints" not in p.parts]
    passed = failed = 0
    for path in paths:
        problems = check(path, fix)
        name = path.relative_to(ROOT) if path.is_absolute() else path
        if problems and not fix:
            failed += 1
            print(f"{name}:")
            for p in problems:
                print(f"  {p}")
        else:
            passed += 1
            print(f"{name}: {'fixed ' + str(len(problems)) + ' cells' if problems else 'ok'}")
    if failed:
        print("Run `.venv/bin/python tests/notebook_sources.py --fix` to clear outputs and format the cells.")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
