"""Pre-warms a kernel build slot: starts the kernel and runs a cell that uses the prelude,
which compiles mechlens and its dependencies in the slot. Run by `make setup`."""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from session import PRELUDE_CELL, PRELUDE_CELL_RESULT, STARTUP_TIMEOUT_S, KernelSession  # noqa: E402

start = time.monotonic()
with KernelSession() as kernel:
    # This one cell compiles the slot's whole dependency graph (tch, polars, plotters, ...)
    # at the kernel's profile: 15 minutes or more on 2 cores, so it gets the startup budget,
    # not a cell's (a CI run failed at the 900 s cell limit while cargo was still working).
    reply = kernel.run(PRELUDE_CELL, timeout=STARTUP_TIMEOUT_S)
if reply.status != "ok" or reply.text != PRELUDE_CELL_RESULT:
    sys.exit(f"the first cell failed: {reply.error or reply.stderr or reply.outputs}")
print(f"kernel warm: first cell answered after {time.monotonic() - start:.1f} s")
