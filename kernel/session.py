"""A "Rust · mechlens" kernel driven from Python: for setup's warm-up, tests and benchmarks.

    with KernelSession() as k:
        reply = k.run("1 + 1")
        assert reply.text == "2"
"""

import os
import time
from dataclasses import dataclass, field

from jupyter_client.manager import KernelManager

# A first cell that needs the prelude (tch through mechlens), and what it must show.
PRELUDE_CELL = "Tensor::ones([2, 2], (Kind::Float, best_device())).sum(Kind::Float).double_value(&[])"
PRELUDE_CELL_RESULT = "4.0"

# A cold build slot compiles tch and polars before the first cell answers: minutes on 2 cores.
STARTUP_TIMEOUT_S = 1800


@dataclass
class Reply:
    """What one cell produced."""

    status: str  # "ok" or "error"
    outputs: dict = field(default_factory=dict)  # MIME type -> content, last one wins
    stdout: str = ""
    stderr: str = ""
    error: str = ""  # ename: evalue and traceback, when status is "error"
    seconds: float = 0.0

    @property
    def text(self) -> str:
        return self.outputs.get("text/plain", "")


class KernelSession:
    def __init__(self, kernel_name="mechlens", env=None, startup_timeout=STARTUP_TIMEOUT_S, cwd=None):
        self.kernel_name = kernel_name
        self.env = env
        self.cwd = cwd
        self.startup_timeout = startup_timeout
        self.startup_seconds = None

    def __enter__(self):
        start = time.monotonic()
        self.manager = KernelManager(kernel_name=self.kernel_name)
        env = dict(os.environ)
        env.update(self.env or {})
        self.manager.start_kernel(env=env, **({"cwd": str(self.cwd)} if self.cwd else {}))
        self.client = self.manager.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=self.startup_timeout)
        self.startup_seconds = time.monotonic() - start
        return self

    def __exit__(self, *exc):
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=False)

    def run(self, code, timeout=900) -> Reply:
        """Runs one cell and collects its outputs."""
        start = time.monotonic()
        msg_id = self.client.execute(code)
        reply = Reply(status="ok")
        deadline = start + timeout
        while True:
            msg = self.client.get_iopub_msg(timeout=max(1.0, deadline - time.monotonic()))
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                if content["name"] == "stdout":
                    reply.stdout += content["text"]
                else:
                    reply.stderr += content["text"]
            elif kind in ("execute_result", "display_data"):
                reply.outputs.update(content["data"])
            elif kind == "error":
                reply.status = "error"
                reply.error = f"{content['ename']}: {content['evalue']}\n" + "\n".join(
                    content["traceback"]
                )
            elif kind == "status" and content["execution_state"] == "idle":
                break
        shell = self.client.get_shell_msg(timeout=timeout)
        if shell["content"]["status"] != "ok":
            reply.status = "error"
        reply.seconds = time.monotonic() - start
        return reply

    def run_timed(self, cells) -> list:
        """Runs each cell in turn and returns their seconds; stops the program at a failed
        cell (benchmarks time working cells only)."""
        times = []
        for code in cells:
            reply = self.run(code)
            if reply.status != "ok":
                raise SystemExit(f"benchmark cell failed: {code}\n{reply.error}")
            times.append(reply.seconds)
        return times
