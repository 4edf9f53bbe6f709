"""The repository's datasets/ for the Python side of the tests (fixture generators, benches).

The same manifest the Rust resolver (mechlens::datasets) reads: each file is checked against
its size and sha256 before use, and a bad one stops the script with one sentence naming it."""

import hashlib
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDER = ROOT / "datasets"


def path(name: str) -> Path:
    """The folder of data set `name`, after checking its files."""
    manifest = json.loads((FOLDER / "manifest.json").read_text())
    entries = {e["name"]: e for e in manifest["datasets"]}
    if name not in entries:
        raise SystemExit(f"data set `{name}` is not in {FOLDER / 'manifest.json'}; it lists: {', '.join(entries)}")
    for f in entries[name]["files"]:
        file = FOLDER / f["path"]
        restore = f"restore it with `git checkout -- datasets/{f['path']}`"
        if not file.is_file():
            raise SystemExit(f"data file {file} is missing; {restore}")
        data = file.read_bytes()
        if len(data) != f["bytes"] or hashlib.sha256(data).hexdigest() != f["sha256"]:
            raise SystemExit(f"data file {file} is corrupt or was changed (size or sha256 differ from the manifest); {restore}")
    return FOLDER / name
