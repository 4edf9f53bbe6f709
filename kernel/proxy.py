"""The "Rust · mechlens" kernel's front: a small Jupyter kernel that runs evcxr behind it and
reports a failed cell as failed.

evcxr answers "ok" for a cell whose `?` returned an error or that panicked, and prints the
message on stderr; a notebook's "Run All" then runs on into a cascade of follow-on errors. In
the kernel's child process, mechlens' cell guard (crates/mechlens-viz/src/cell_guard.rs,
installed by the prelude) adds a display block of type CELL_ERROR_MIME to such a cell. This
front passes every message between Jupyter and evcxr through unchanged, except that it turns
that block into a Jupyter error (an `error` message and an execute_reply with status
"error", ename and evalue), so the notebook stops there as it would in a Python kernel.
Earlier variables survive: evcxr's own state handling is untouched.

evcxr runs from kernel/launch (build slots, the build-error stand-in) on a connection of its
own, in this process's process group, so that Jupyter's kill of the kernel ends both.

While the user reads the notebook's first lines, this front runs one cell of its own
(WARM_UP_CELL): evcxr's first `let` makes rust-analyzer read the whole crate graph behind
mechlens (~10 s on 2 cores), which would otherwise fall on the user's first `let`. It runs only
if no cell of the user's arrived before evcxr was up, so Run All never waits for it.

Usage (kernel.json): proxy.py -f CONNECTION_FILE
"""

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ipykernel.kernelapp import IPKernelApp
from ipykernel.kernelbase import Kernel
from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.connect import write_connection_file

ROOT = Path(__file__).resolve().parent.parent
CELL_ERROR_MIME = "application/vnd.mechlens.cell-error+json"
# A cold build slot compiles tch and polars before evcxr answers: minutes on 2 cores.
BACKEND_STARTUP_TIMEOUT_S = 1800
# Messages from evcxr passed to Jupyter as they are (execute_input and status are our own).
FORWARDED = {"stream", "display_data", "update_display_data", "clear_output", "error"}


# A cell that evcxr analyses (types of a `let` that touches tch, polars and mechlens' `?`) and
# then rejects with a type error: the analysis is the point, the error stops it before code
# generation, and a failed cell leaves no variable behind. MECHLENS_NO_WARM_UP=1 turns it off.
WARM_UP_CELL = (
    'let mechlens_warm_up = (Tensor::zeros([1], (Kind::Float, Device::Cpu)).sum(Kind::Float), '
    'df!("x" => &[1i64])?.height(), LoadOptions::default()); let mechlens_warm_up_end: () = 0u8;'
)

# evcxr's language_info, answered here at once (Jupyter asks before evcxr is up).
LANGUAGE_INFO = {"name": "Rust", "version": "", "mimetype": "text/rust", "file_extension": ".rs",
                 "pygment_lexer": "rust", "codemirror_mode": "rust"}


class MechlensKernel(Kernel):
    implementation = "mechlens"
    implementation_version = "1"
    banner = "Rust · mechlens (evcxr, with mechlens' prelude)"
    language_info = LANGUAGE_INFO

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._tmp = tempfile.TemporaryDirectory(prefix="mechlens-kernel-")
        connection_file, _ = write_connection_file(
            str(Path(self._tmp.name, "evcxr.json")), ip="127.0.0.1", transport="tcp"
        )
        launcher = os.environ.get("MECHLENS_LAUNCH", str(ROOT / "kernel" / "launch"))
        # Same process group as this front (no new session): Jupyter kills the group.
        self._backend = subprocess.Popen([launcher, connection_file], stdin=subprocess.DEVNULL)
        self._client = AsyncKernelClient()
        self._client.load_connection_file(connection_file)
        self._client.start_channels()
        self._ready = False
        self._library = library_fingerprint()
        self._stale_warned = False
        # One conversation with evcxr at a time: replies are matched by reading its channels.
        self._backend_lock = asyncio.Lock()
        self._user_cell_seen = False

    def start(self):
        super().start()
        if not os.environ.get("MECHLENS_NO_WARM_UP"):
            self.io_loop.add_callback(self._warm_up)

    async def _warm_up(self):
        """Runs WARM_UP_CELL once evcxr is up, unless a cell of the user's came first: a
        notebook run at once (Run All) pays nothing for it, a reader's first `let` less."""
        async with self._backend_lock:
            if self._user_cell_seen or await self._ensure_ready() or self._user_cell_seen:
                return
            # Silent: nothing reaches the notebook, and its expected error is dropped.
            await self._execute(WARM_UP_CELL, silent=True, store_history=False, allow_stdin=False)

    # --- the backend ------------------------------------------------------------------------

    def _backend_gone(self):
        code = self._backend.poll()
        if code is None:
            return None
        return f"the Rust kernel process (evcxr) exited with status {code}; restart the kernel"

    async def _ensure_ready(self):
        if self._ready:
            return None
        deadline = time.monotonic() + BACKEND_STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            gone = self._backend_gone()
            if gone:
                return gone
            try:
                await self._client.wait_for_ready(timeout=5)
                self._ready = True
                return None
            except RuntimeError:
                continue
        return "the Rust kernel (evcxr) did not start in time; restart the kernel"

    async def _next(self, channel, timeout):
        """The next message on `channel`, or None after `timeout` seconds."""
        try:
            return await channel.get_msg(timeout=timeout)
        except (asyncio.TimeoutError, TimeoutError):
            return None
        except Exception as e:  # an empty queue raises queue.Empty in some versions
            if type(e).__name__ == "Empty":
                return None
            raise

    # --- execution --------------------------------------------------------------------------

    async def do_execute(self, code, silent, store_history=True, user_expressions=None,
                         allow_stdin=False, *, cell_meta=None, cell_id=None):
        self._user_cell_seen = True
        async with self._backend_lock:
            return await self._execute(code, silent, store_history, allow_stdin)

    async def _execute(self, code, silent, store_history, allow_stdin):
        problem = await self._ensure_ready()
        if problem:
            return self._fail("KernelError", problem, silent)
        self._warn_if_stale(silent)
        msg_id = self._client.execute(code, silent=silent, store_history=store_history,
                                      allow_stdin=allow_stdin)
        cell_error = None
        idle = False
        reply = None
        while not (idle and reply):
            if not idle:
                msg = await self._next(self._client.iopub_channel, 0.05)
                if msg is not None and msg["parent_header"].get("msg_id") == msg_id:
                    idle, cell_error = self._relay(msg, silent, cell_error)
            if allow_stdin:
                request = await self._next(self._client.stdin_channel, 0)
                if request is not None and request["msg_type"] == "input_request":
                    self._answer_input(request)
            if reply is None:
                reply = await self._next(self._client.shell_channel, 0 if not idle else 0.05)
                if reply is not None and reply["parent_header"].get("msg_id") != msg_id:
                    reply = None
            gone = self._backend_gone()
            if gone and not (idle and reply):
                return self._fail("KernelError", gone, silent)
        content = dict(reply["content"])
        content["execution_count"] = self.execution_count
        if cell_error and content.get("status") == "ok":
            return self._fail(cell_error.get("ename", "Error"), cell_error.get("evalue", ""), silent)
        return content

    def _warn_if_stale(self, silent):
        """Cells compile against the library as it is now, but variables made earlier hold
        values of its types as they were: after an edit, only a restart is safe."""
        if self._stale_warned or silent or library_fingerprint() == self._library:
            return
        self._stale_warned = True
        self.send_response(self.iopub_socket, "stream", {"name": "stderr", "text": (
            "mechlens' source changed since this kernel started: restart the kernel "
            "(Kernel > Restart) before relying on variables made earlier.\n")})

    def _relay(self, msg, silent, cell_error):
        """Passes one iopub message on; returns (idle, cell_error)."""
        kind, content = msg["msg_type"], dict(msg["content"])
        if kind == "status":
            return content.get("execution_state") == "idle", cell_error
        if kind == "execute_result":
            data = dict(content.get("data", {}))
            marker = data.pop(CELL_ERROR_MIME, None)
            if marker is not None:
                cell_error = marker if isinstance(marker, dict) else _parse(marker)
            if data and not silent:
                content["data"] = data
                content["execution_count"] = self.execution_count
                self.send_response(self.iopub_socket, "execute_result", content)
        elif kind in FORWARDED and not silent:
            self.send_response(self.iopub_socket, kind, content)
        return False, cell_error

    def _answer_input(self, request):
        prompt = request["content"].get("prompt", "")
        if request["content"].get("password"):
            value = self.getpass(prompt)
        else:
            value = self.raw_input(prompt)
        self._client.input(value)

    def _fail(self, ename, evalue, silent):
        traceback = [f"\x1b[0;31m{ename}\x1b[0m: {evalue}"]
        if not silent:
            self.send_response(self.iopub_socket, "error",
                               {"ename": ename, "evalue": evalue, "traceback": traceback})
        return {"status": "error", "execution_count": self.execution_count,
                "ename": ename, "evalue": evalue, "traceback": traceback}

    # --- the rest of the protocol, forwarded --------------------------------------------------

    async def _ask(self, method, *args):
        async with self._backend_lock:
            if await self._ensure_ready():
                return None
            msg_id = method(*args)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                reply = await self._next(self._client.shell_channel, 1)
                if reply is not None and reply["parent_header"].get("msg_id") == msg_id:
                    return reply["content"]
            return None

    async def do_complete(self, code, cursor_pos):
        reply = await self._ask(self._client.complete, code, cursor_pos)
        return reply or {"matches": [], "cursor_start": cursor_pos, "cursor_end": cursor_pos,
                         "metadata": {}, "status": "ok"}

    async def do_inspect(self, code, cursor_pos, detail_level=0, omit_sections=()):
        reply = await self._ask(self._client.inspect, code, cursor_pos, detail_level)
        return reply or {"status": "ok", "found": False, "data": {}, "metadata": {}}

    async def do_is_complete(self, code):
        reply = await self._ask(self._client.is_complete, code)
        return reply or {"status": "unknown"}

    async def interrupt_request(self, stream, ident, parent):
        # evcxr takes interrupts as messages; never signal our own process group (evcxr is in it).
        msg = self._client.session.msg("interrupt_request", {})
        self._client.control_channel.send(msg)
        self.session.send(stream, "interrupt_reply", {"status": "ok"}, parent, ident=ident)

    async def do_shutdown(self, restart):
        try:
            self._client.shutdown(restart=False)
            self._backend.wait(timeout=10)
        except Exception:
            self._backend.kill()
        self._client.stop_channels()
        self._tmp.cleanup()
        return {"status": "ok", "restart": restart}


def library_fingerprint():
    """The sizes and times of mechlens' library sources (crates/, Cargo.lock): a few ms to read."""
    crates = Path(os.environ["MECHLENS_CRATE"]) if "MECHLENS_CRATE" in os.environ else ROOT / "crates"
    entries = []
    for folder, _, files in os.walk(crates):
        # What a cell links against: not the crates' tests, examples or benches.
        if {"target", "tests", "examples", "benches"} & set(Path(folder).relative_to(crates).parts):
            continue
        for name in files:
            if name.endswith(".rs") or name == "Cargo.toml":
                st = os.stat(os.path.join(folder, name))
                entries.append((folder, name, st.st_size, st.st_mtime_ns))
    lock = ROOT / "Cargo.lock"
    if lock.exists():
        entries.append(("", "Cargo.lock", lock.stat().st_size, lock.stat().st_mtime_ns))
    return hash(tuple(sorted(entries)))


def _parse(text):
    try:
        value = json.loads(text)
        return value if isinstance(value, dict) else {"ename": "Error", "evalue": str(value)}
    except ValueError:
        return {"ename": "Error", "evalue": str(text)}


if __name__ == "__main__":
    IPKernelApp.launch_instance(kernel_class=MechlensKernel)
