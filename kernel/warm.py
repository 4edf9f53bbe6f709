"""Pre-warms a kernel build slot: starts the kernel and runs a cell that uses the prelude,
which compiles in the slot what the workspace build did not (kernel/seed_slot.py): mechlens'
own crates, the library facade and the cell, ~1 min on 2 cores. Run by `make setup`."""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from session import PRELUDE_CELL, PRELUDE_CELL_RESULT, KernelSession  # noqa: E402

# A slot that cannot be seeded (on another file system than target/) compiles the whole
# dependency graph (tch, polars, plotters, ...) in its first cell: 900 s on a CI machine was
# not enough, 1334 s here with a test running beside it. Its only limit is CI's own.
WARM_CELL_TIMEOUT_S = 3600

start = time.monotonic()
with KernelSession() as kernel:
    reply = kernel.run(PRELUDE_CELL, timeout=WARM_CELL_TIMEOUT_S)
if reply.status != "ok" or reply.text != PRELUDE_CELL_RESULT:
    sys.exit(f"the first cell failed: {reply.error or reply.stderr or reply.outputs}")
print(f"kernel warm: first cell answered after {time.monotonic() - start:.1f} s")
