#!/usr/bin/env python3
"""Builds each exercise set's two notebooks from its one source, so that they cannot drift.

A set's source is notebooks/exercises/sources/<SET>.md, a plain-text file of blocks, each
opened by a line `%% <kind> [key=value ...]`:

    %% notebook title="..." learner_budget_s=60 solution_budget_s=120 expect="text/html image/svg+xml"
    %% md          a markdown cell
    %% code        a Rust cell; lines between `// SOLUTION` and `// END SOLUTION` are the
                   answer: the learner's notebook has `todo!()` there (at the marker's
                   indent) and, under the cell, the answer in a collapsed "Solution" block
    %% exercise name=layer_norm difficulty=2 importance=5 minutes=15
                   the exercise's heading (numbered), its markers, and the text under it
    %% hint        a collapsed "Hint" block
    %% stuck       a collapsed "I'm stuck" block
    %% expected file=E1-loss.svg
                   the solution's chart, shown to the learner (attached to the cell, so it
                   travels with the notebook): the svg output of the solution's cell tagged
                   `expected=E1-loss.svg`, kept in notebooks/exercises/expected/ by
                   `--expected` (after `make test` ran it), which then rebuilds the notebooks

It writes notebooks/exercises/<SET>.ipynb (the learner's) and
notebooks/exercises/solutions/<SET>.ipynb. The solution's first code cell also turns on the
checks' strict mode, so a solution that stops passing stops "Run All" (and `make test`).

Usage: scripts/exercises.py             write every set's notebooks
       scripts/exercises.py --check     exit 1 if a committed notebook is not what its source
                                        gives (`make test` runs this)
       scripts/exercises.py --expected [SET ...]
                                        copy the expected charts out of target/notebooks/
                                        (of the named sets only, e.g. E2-induction-heads, so
                                        that stale executed copies of other sets stay out)
       scripts/exercises.py --format    lay out every source's code blocks as rustfmt does
                                        (what tests/notebook_sources.py then requires)
"""

import base64
import hashlib
import json
import re
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXERCISES = ROOT / "notebooks" / "exercises"
SOURCES = EXERCISES / "sources"
EXPECTED = EXERCISES / "expected"
EXECUTED = ROOT / "target" / "notebooks" / "exercises"
SOLUTION_START = "// SOLUTION"
SOLUTION_END = "// END SOLUTION"
STRICT_LINES = [
    "",
    "// The solution notebook: from here on a check that does not pass is an error,",
    "// which stops \"Run All\" (the learner's notebook reports and goes on).",
    "check::strict(true);",
]
KERNEL = {
    "kernelspec": {"display_name": "Rust · mechlens", "language": "rust", "name": "mechlens"},
    "language_info": {
        "codemirror_mode": "rust",
        "file_extension": ".rs",
        "mimetype": "text/rust",
        "name": "Rust",
        "pygment_lexer": "rust",
        "version": "",
    },
}
KINDS = {"notebook", "md", "code", "exercise", "hint", "stuck", "expected"}


class SourceError(Exception):
    pass


def parse(path: Path) -> list[tuple[str, dict, str]]:
    """The blocks of a source: (kind, options, text)."""
    blocks = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if line.startswith("%% "):
            words = shlex.split(line[3:])
            kind, options = words[0], {}
            if kind not in KINDS:
                raise SourceError(f"{path.name}:{number}: unknown block `{kind}` (one of {sorted(KINDS)})")
            for word in words[1:]:
                key, sep, value = word.partition("=")
                if not sep:
                    raise SourceError(f"{path.name}:{number}: `{word}` is not key=value")
                options[key] = value
            blocks.append((kind, options, []))
        elif blocks:
            blocks[-1][2].append(line)
        elif line.strip():
            raise SourceError(f"{path.name}:{number}: text before the first `%% ` block")
    return [(k, o, "\n".join(t).strip("\n")) for k, o, t in blocks]


def split_solution(code: str, where: str) -> tuple[str, str, bool]:
    """(the learner's code, the solution's code, whether it had an answer)."""
    learner, solution, inside, had = [], [], False, False
    for line in code.splitlines():
        marker = line.strip()
        if marker == SOLUTION_START:
            if inside:
                raise SourceError(f"{where}: `{SOLUTION_START}` inside another")
            inside, had = True, True
            learner.append(line[: len(line) - len(line.lstrip())] + "todo!()")
        elif marker == SOLUTION_END:
            if not inside:
                raise SourceError(f"{where}: `{SOLUTION_END}` without `{SOLUTION_START}`")
            inside = False
        else:
            solution.append(line)
            if not inside:
                learner.append(line)
    if inside:
        raise SourceError(f"{where}: `{SOLUTION_START}` is never closed")
    return "\n".join(learner), "\n".join(solution), had


def dots(n: int, on: str) -> str:
    n = max(0, min(5, n))
    return on * n + "⚪" * (5 - n)


def details(summary: str, body: str) -> str:
    return f"<details>\n<summary>{summary}</summary>\n\n{body}\n\n</details>"


def build(path: Path) -> dict[str, dict]:
    """The learner's and the solution's notebook of one source."""
    blocks = parse(path)
    if not blocks or blocks[0][0] != "notebook":
        raise SourceError(f"{path.name}: the first block must be `%% notebook ...`")
    header = blocks[0][1]
    cells = {"learner": [], "solution": []}

    def add(role_cells, kind, text, tags=()):
        cell = {"cell_type": kind, "metadata": {"tags": list(tags)} if tags else {}, "source": text}
        if kind == "code":
            cell.update(execution_count=None, outputs=[])
        role_cells.append(cell)

    number, first_code, exercises, answered = 0, True, [], 0
    for index, (kind, options, text) in enumerate(blocks[1:], 2):
        where = f"{path.name} block {index}"
        if kind == "md":
            for role in cells:
                add(cells[role], "markdown", text)
        elif kind == "exercise":
            number += 1
            name = options.get("name") or ""
            try:
                difficulty, importance, minutes = (int(options[k]) for k in ("difficulty", "importance", "minutes"))
            except (KeyError, ValueError):
                raise SourceError(f"{where}: an exercise needs name, difficulty, importance and minutes") from None
            exercises.append(name)
            heading = (
                f"### Exercise {number}: `{name}`\n\n"
                f"> **Difficulty** {dots(difficulty, '🔴')} · **Importance** {dots(importance, '🔵')} · "
                f"**About {minutes} minutes**"
            )
            for role in cells:
                add(cells[role], "markdown", heading + ("\n\n" + text if text else ""))
        elif kind in ("hint", "stuck"):
            summary = "💡 Hint" if kind == "hint" else "🆘 I'm stuck"
            for role in cells:
                add(cells[role], "markdown", details(summary, text))
        elif kind == "expected":
            name = options.get("file") or ""
            if not re.fullmatch(r"[\w.-]+\.svg", name):
                raise SourceError(f"{where}: `%% expected` needs file=<name>.svg")
            caption = text or "What the solution draws:"
            chart = EXPECTED / name
            if chart.exists():
                # Attached, not linked: the notebook shows it wherever it is copied to.
                body = f"{caption}\n\n![expected output](attachment:{name})"
                add(cells["learner"], "markdown", details("📈 Expected output", body))
                cells["learner"][-1]["attachments"] = {
                    name: {"image/svg+xml": base64.b64encode(chart.read_bytes()).decode()}
                }
            else:
                body = f"{caption}\n\n(The chart appears here once `scripts/exercises.py --expected` has saved it.)"
                add(cells["learner"], "markdown", details("📈 Expected output", body))
        elif kind == "code":
            learner, solution, had = split_solution(text, where)
            answered += had
            if first_code:
                solution = solution + "\n" + "\n".join(STRICT_LINES)
                first_code = False
            tags = [f"expected={options['expected']}"] if "expected" in options else []
            add(cells["solution"], "code", solution, tags)
            add(cells["learner"], "code", learner, tags)
            if had:
                add(cells["learner"], "markdown", details("✅ Solution", f"```rust\n{solution}\n```"))
    if answered == 0:
        raise SourceError(f"{path.name}: no code block has a `{SOLUTION_START}` answer")

    notebooks = {}
    for role, role_cells in cells.items():
        for i, cell in enumerate(role_cells):
            digest = hashlib.sha1(f"{path.stem}/{role}/{i}".encode()).hexdigest()[:8]
            cell["id"] = digest
            cell["source"] = cell["source"].splitlines(True)
        budget = int(header.get(f"{role}_budget_s", "120"))
        meta = {"budget_s": budget, "role": role, "source": f"sources/{path.name}", "exercises": exercises}
        if role == "solution" and header.get("expect"):
            meta["expect_outputs"] = header["expect"].split()
        notebooks[role] = {
            "cells": role_cells,
            "metadata": {**KERNEL, "mechlens": meta},
            "nbformat": 4,
            "nbformat_minor": 5,
        }
    return notebooks


def expected_charts(path: Path) -> list[str]:
    """The chart files a source's learner notebook shows."""
    return [o["file"] for kind, o, _ in parse(path) if kind == "expected"]


def target(path: Path, role: str) -> Path:
    name = path.stem + ".ipynb"
    return EXERCISES / name if role == "learner" else EXERCISES / "solutions" / name


def text_of(nb: dict) -> str:
    # The layout notebook_sources.py --fix writes.
    return json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def copy_expected(sets: list[str]) -> int:
    """Saves each solution cell's svg tagged `expected=NAME` as expected/NAME, for the named
    sets (every set when none is named)."""
    import nbformat

    known = {source.stem for source in SOURCES.glob("*.md")}
    unknown = sorted(set(sets) - known)
    if unknown:
        print(f"no exercise set {', '.join(unknown)}; the sets are {', '.join(sorted(known))}", file=sys.stderr)
        return 2
    executed_sets = sorted((EXECUTED / "solutions").glob("*.ipynb"))
    missing = sorted(set(sets) - {e.stem for e in executed_sets})
    if missing:
        print(f"{', '.join(missing)} not executed: run its solution notebook first (make test does)", file=sys.stderr)
        return 1
    saved = 0
    for executed in executed_sets:
        if sets and executed.stem not in sets:
            continue
        nb = nbformat.read(executed, as_version=4)
        for cell in nb.cells:
            for tag in cell.get("metadata", {}).get("tags", []):
                if not tag.startswith("expected="):
                    continue
                svg = [o["data"]["image/svg+xml"] for o in cell.get("outputs", []) if "image/svg+xml" in o.get("data", {})]
                if not svg:
                    print(f"{executed.name}: the cell tagged {tag} has no svg output", file=sys.stderr)
                    return 1
                EXPECTED.mkdir(parents=True, exist_ok=True)
                text = svg[-1] if isinstance(svg[-1], str) else "".join(svg[-1])
                (EXPECTED / tag.split("=", 1)[1]).write_text(text)
                saved += 1
    print(f"saved {saved} expected chart(s) in {EXPECTED.relative_to(ROOT)}")
    return main([])  # the learner notebooks carry the charts: build them again


def format_sources() -> int:
    """Rewrites each source's code blocks as rustfmt lays them out (markers are comments, so
    they stay where they are)."""
    sys.path.insert(0, str(ROOT / "tests"))
    from notebook_sources import rustfmt_cell

    for source in sorted(SOURCES.glob("*.md")):
        out, block, kind = [], [], None

        def flush():
            if kind == "code" and block:
                text = "\n".join(block).strip("\n")
                tail = len(block) - len("\n".join(block).rstrip("\n").split("\n"))
                out.extend(rustfmt_cell(text).split("\n") + [""] * tail)
            else:
                out.extend(block)

        for line in source.read_text().splitlines():
            if line.startswith("%% "):
                flush()
                block, kind = [], shlex.split(line[3:])[0]
                out.append(line)
            else:
                block.append(line)
        flush()
        source.write_text("\n".join(out) + "\n")
        print(f"formatted {source.relative_to(ROOT)}")
    return 0


def main(argv: list[str]) -> int:
    usage = __doc__[__doc__.index("Usage:"):]
    if "--help" in argv or "-h" in argv:
        print(usage)
        return 0
    options = [a for a in argv if a.startswith("-")]
    sets = [a for a in argv if not a.startswith("-")]
    unknown = [o for o in options if o not in ("--check", "--expected", "--format")]
    if unknown or (sets and "--expected" not in options):
        print(f"unknown arguments {' '.join(unknown or sets)}\n{usage}", file=sys.stderr)
        return 2
    if "--expected" in argv:
        return copy_expected(sets)
    if "--format" in argv:
        return format_sources()
    check = "--check" in argv
    sources = sorted(SOURCES.glob("*.md"))
    if not sources:
        print(f"no exercise sources in {SOURCES.relative_to(ROOT)}", file=sys.stderr)
        return 1
    stale = []
    for source in sources:
        try:
            notebooks = build(source)
        except SourceError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        for role, nb in notebooks.items():
            out = target(source, role)
            text = text_of(nb)
            if check:
                if not out.exists() or out.read_text() != text:
                    stale.append(out.relative_to(ROOT))
            else:
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_text(text)
                print(f"wrote {out.relative_to(ROOT)}")
        for name in expected_charts(source):
            if check and not (EXPECTED / name).exists():
                stale.append((EXPECTED / name).relative_to(ROOT))
    if check:
        for path in stale:
            if path.suffix == ".svg":
                print(f"{path} is missing: run the solution notebook, then scripts/exercises.py --expected")
            else:
                print(f"{path} is not what its source gives: run scripts/exercises.py and commit it")
        print(f"{2 * len(sources) - len(stale)} passed, {len(stale)} failed")
        return 1 if stale else 0
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
