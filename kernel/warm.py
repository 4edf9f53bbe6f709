"""Pre-warms a kernel build slot: starts the kernel and runs a cell that uses the prelude,
which compiles mechlens and its dependencies in the slot. Run by `make setup`."""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from session import KernelSession  # noqa: E402

FIRST_CELL = 'let t = Tensor::ones([2, 2], (Kind::Float, best_device())); t.sum(Kind::Float).double_value(&[])'

start = time.monotonic()
with KernelSession() as kernel:
    reply = kernel.run(FIRST_CELL)
if reply.status != "ok" or reply.text != "4.0":
    sys.exit(f"the first cell failed: {reply.error or reply.stderr or reply.outputs}")
print(f"kernel warm: first cell answered after {time.monotonic() - start:.1f} s")
