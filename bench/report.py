"""Where `make bench` writes its figures: bench/results.json (one object per figure, grouped by
benchmark) and one section per benchmark in BENCHMARKS.md."""

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def write_results(group, results):
    path = ROOT / "bench" / "results.json"
    existing = json.loads(path.read_text()) if path.exists() else []
    kept = [r for r in existing if r.get("group") != group]
    path.write_text(json.dumps(kept + [dict(r, group=group) for r in results], indent=2) + "\n")


def write_section(title, body):
    """Replaces the `## title` section of BENCHMARKS.md in place (or appends it), keeping the
    others."""
    path = ROOT / "BENCHMARKS.md"
    text = path.read_text() if path.exists() else "# Benchmarks\n\nWritten by `make bench`.\n"
    head, *sections = text.split("\n## ")
    body = body.removeprefix("## ").rstrip() + "\n"
    index = next((i for i, s in enumerate(sections) if s.startswith(title + "\n")), None)
    if index is None:
        sections.append(body)
    else:
        sections[index] = body
    path.write_text("\n## ".join([head.rstrip() + "\n"] + [s.rstrip() + "\n" for s in sections]))
