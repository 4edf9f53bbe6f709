"""Where the shared test data (../shared/data: BabyLlama, tinyshakespeare) is.

Tests only: it is not in the repository. Looked up in $MECHLENS_DATA, then ../shared/data
beside the checkout, then /work/shared/data (where this project's machines mount it, for a
clone made elsewhere)."""

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MARKER = Path("models") / "babyllama-tinystories" / "model.bin"


def shared_data() -> Path:
    candidates = [os.environ.get("MECHLENS_DATA"), ROOT.parent / "shared" / "data", "/work/shared/data"]
    for candidate in candidates:
        if candidate and (Path(candidate) / MARKER).is_file():
            return Path(candidate).resolve()
    tried = ", ".join(str(c) for c in candidates if c)
    raise SystemExit(f"shared test data ({MARKER}) not found in: {tried}; set MECHLENS_DATA to its folder")
