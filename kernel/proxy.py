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
(backend.WARM_UP_CELL): evcxr's first `let` makes rust-analyzer read the whole crate graph
behind mechlens (~10 s on 2 cores), which would otherwise fall on the user's first `let`. It
runs only if no cell of the user's arrived before evcxr was up, so Run All never waits for it.

A front first looks for a kernel on standby (kernel/standby.py: evcxr already up and warm, made
while an earlier kernel sat idle) and takes it over instead of starting evcxr; once its own
kernel has been idle for STANDBY_AFTER_IDLE_S, it starts the next standby.

Usage (kernel.json): proxy.py -f CONNECTION_FILE
"""

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ipykernel.kernelapp import IPKernelApp
from ipykernel.kernelbase import Kernel
from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.connect import write_connection_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
import standby  # noqa: E402
from backend import ROOT, WARM_UP_CELL, library_fingerprint, set_current_dir_cell  # noqa: E402

CELL_ERROR_MIME = "application/vnd.mechlens.cell-error+json"
# A cold build slot compiles tch and polars before evcxr answers: minutes on 2 cores.
BACKEND_STARTUP_TIMEOUT_S = 1800
# Messages from evcxr passed to Jupyter as they are (execute_input and status are our own).
FORWARDED = {"stream", "display_data", "update_display_data", "clear_output", "error"}
# A kernel idle this long starts a standby for the next one (the reader is reading, so the
# standby's ~20 s of warm-up does not slow a cell down); MECHLENS_STANDBY_AFTER_IDLE_S sets it.
STANDBY_AFTER_IDLE_S = float(os.environ.get("MECHLENS_STANDBY_AFTER_IDLE_S", 10))
# A standby that could not start (no warm slot free) is not tried again for this long.
STANDBY_RETRY_S = 60
# How long a retired standby may take to quit and free its build slot.
STANDBY_RETIRE_WAIT_S = 5
# How long a kernel waits for a standby that was warming when it started (a warm-up takes
# ~20-35 s on 2 cores; starting evcxr from nothing beside it would take longer than the wait).
STANDBY_AWAIT_S = 120

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
        self._backend = None  # kernel/launch's process, or a standby's evcxr taken over
        self._client = None
        self._took_over_standby = False
        # A matching standby still warming up: waited for, at the first cell, if not None.
        self._awaited_standby = None
        # Cells of our own to run before the user's first (a standby's working directory).
        self._setup_cells = []
        self._ready = False
        self._library = library_fingerprint()
        self._stale_warned = False
        # One conversation with evcxr at a time: replies are matched by reading its channels.
        self._backend_lock = asyncio.Lock()
        self._user_cell_seen = False
        self._last_activity = time.monotonic()
        if standby.enabled():
            taken, warming, retired = standby.claim(os.getpid(), self._library)
        else:
            # Off: a standby left by a JupyterLab session quits, freeing its warm build slot.
            taken, warming, retired = None, None, standby.retire_all()
        wait_until_gone(retired, STANDBY_RETIRE_WAIT_S)
        if taken:
            self._connect_to_standby(taken)
        elif warming:
            self._awaited_standby = warming
        else:
            self._launch()

    def _launch(self):
        """Starts evcxr from nothing, through kernel/launch."""
        connection_file, _ = write_connection_file(
            str(Path(self._tmp.name, "evcxr.json")), ip="127.0.0.1", transport="tcp"
        )
        launcher = os.environ.get("MECHLENS_LAUNCH", str(ROOT / "kernel" / "launch"))
        # Same process group as this front (no new session): Jupyter kills the group.
        self._backend = subprocess.Popen([launcher, connection_file], stdin=subprocess.DEVNULL)
        self._connect(connection_file)

    def _connect_to_standby(self, info):
        self._backend = TakenOverBackend(info["pid"])
        self._took_over_standby = True
        if info["cwd"] != os.getcwd():
            self._setup_cells.append(set_current_dir_cell(os.getcwd()))
        self._connect(info["connection_file"])

    def _connect(self, connection_file):
        self._client = AsyncKernelClient()
        self._client.load_connection_file(connection_file)
        # No heartbeat channel: whether evcxr is alive is its process's state (_backend_gone).
        # jupyter_client's heartbeat resets its connection when a ping goes unanswered for 1 s,
        # as it can while evcxr starts on a busy machine; evcxr's heartbeat task ends on that
        # reset ("hb error: ... Connection reset by peer" in kernel.log), and a client that
        # waits for heartbeats before it asks whether the kernel is ready then waited forever
        # (seen once: setup's first cell hung with evcxr idle).
        self._client.start_channels(hb=False)

    async def _await_standby(self):
        """Takes over the standby that was warming when this kernel started, once it is ready;
        starts evcxr itself if it ends first, another kernel takes it, or it is not ready in
        STANDBY_AWAIT_S."""
        deadline = time.monotonic() + STANDBY_AWAIT_S
        folder = Path(self._awaited_standby["folder"])
        self._awaited_standby = None
        while time.monotonic() < deadline:
            state = standby.state_of(folder)
            if state == "ready":
                info = standby.take(folder, os.getpid())
                if info:
                    self._connect_to_standby(info)
                    return
                break
            if state != "warming":
                break
            await asyncio.sleep(0.2)
        else:
            wait_until_gone(standby.retire(folder), STANDBY_RETIRE_WAIT_S)
        self._launch()

    def start(self):
        super().start()
        if not os.environ.get("MECHLENS_NO_WARM_UP"):
            self.io_loop.add_callback(self._warm_up)
        if standby.enabled():
            self.io_loop.add_callback(self._keep_a_standby)

    async def _keep_a_standby(self):
        """Starts a standby for the next kernel whenever none is up and this kernel has been idle
        for STANDBY_AFTER_IDLE_S: the reader is reading, and a restart will find it warm."""
        last_spawn = -STANDBY_RETRY_S
        while self._backend_gone() is None:
            await asyncio.sleep(1)
            now = time.monotonic()
            if (not self._ready or self._backend_lock.locked()
                    or now - self._last_activity < STANDBY_AFTER_IDLE_S
                    or now - last_spawn < STANDBY_RETRY_S or standby.standby_running()):
                continue
            standby.spawn(os.getcwd(), os.getppid())
            last_spawn = now

    async def _warm_up(self):
        """Runs WARM_UP_CELL once evcxr is up, unless a cell of the user's came first (a
        notebook run at once, Run All, pays nothing for it, a reader's first `let` less) or
        the kernel is a standby's, which ran it already."""
        async with self._backend_lock:
            if self._user_cell_seen or await self._ensure_ready() or self._user_cell_seen:
                return
            if self._took_over_standby:
                return
            # Silent: nothing reaches the notebook, and its expected error is dropped.
            await self._execute(WARM_UP_CELL, silent=True, store_history=False, allow_stdin=False)

    # --- the backend ------------------------------------------------------------------------

    def _backend_gone(self):
        if self._backend is None:
            return None  # not started yet: waiting for a standby
        code = self._backend.poll()
        if code is None:
            return None
        status = f" with status {code}" if isinstance(code, int) else ""
        return f"the Rust kernel process (evcxr) exited{status}; restart the kernel"

    async def _ensure_ready(self):
        if self._ready:
            return None
        if self._awaited_standby is not None:
            await self._await_standby()
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
            try:
                return await self._execute(code, silent, store_history, allow_stdin)
            finally:
                self._last_activity = time.monotonic()

    async def _execute(self, code, silent, store_history, allow_stdin):
        problem = await self._ensure_ready()
        if problem:
            return self._fail("KernelError", problem, silent)
        while self._setup_cells:
            await self._run(self._setup_cells.pop(0), True, False, False)
        self._warn_if_stale(silent)
        return await self._run(code, silent, store_history, allow_stdin)

    async def _run(self, code, silent, store_history, allow_stdin):
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
        """Sends a request (a method of the client, by name) and returns evcxr's reply."""
        async with self._backend_lock:
            if await self._ensure_ready():
                return None
            msg_id = getattr(self._client, method)(*args)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                reply = await self._next(self._client.shell_channel, 1)
                if reply is not None and reply["parent_header"].get("msg_id") == msg_id:
                    return reply["content"]
            return None

    async def do_complete(self, code, cursor_pos):
        reply = await self._ask("complete", code, cursor_pos)
        return reply or {"matches": [], "cursor_start": cursor_pos, "cursor_end": cursor_pos,
                         "metadata": {}, "status": "ok"}

    async def do_inspect(self, code, cursor_pos, detail_level=0, omit_sections=()):
        reply = await self._ask("inspect", code, cursor_pos, detail_level)
        return reply or {"status": "ok", "found": False, "data": {}, "metadata": {}}

    async def do_is_complete(self, code):
        reply = await self._ask("is_complete", code)
        return reply or {"status": "unknown"}

    async def interrupt_request(self, stream, ident, parent):
        # evcxr takes interrupts as messages; never signal our own process group (evcxr is in it).
        if self._client is not None:
            msg = self._client.session.msg("interrupt_request", {})
            self._client.control_channel.send(msg)
        self.session.send(stream, "interrupt_reply", {"status": "ok"}, parent, ident=ident)

    async def do_shutdown(self, restart):
        if self._client is not None:
            try:
                self._client.shutdown(restart=False)
                self._backend.wait(timeout=10)
            except Exception:
                self._backend.kill()
            self._client.stop_channels()
        self._tmp.cleanup()
        return {"status": "ok", "restart": restart}


def wait_until_gone(pids, timeout):
    deadline = time.monotonic() + timeout
    while pids and time.monotonic() < deadline:
        pids = [pid for pid in pids if standby.pid_alive(pid)]
        time.sleep(0.05)


class TakenOverBackend:
    """A standby's evcxr, taken over: not this process's child, so it is watched through the
    standby process (kernel/standby.py), which ends evcxr when this front is gone. Answers
    what subprocess.Popen does, as far as the front uses it."""

    def __init__(self, standby_pid):
        self.pid = standby_pid

    def poll(self):
        return None if standby.pid_alive(self.pid) else "gone"

    def wait(self, timeout):
        deadline = time.monotonic() + timeout
        while standby.pid_alive(self.pid):
            if time.monotonic() > deadline:
                raise subprocess.TimeoutExpired("standby", timeout)
            time.sleep(0.05)

    def kill(self):
        try:
            os.killpg(self.pid, signal.SIGKILL)  # the standby leads its backend's process group
        except (ProcessLookupError, PermissionError):
            pass


def _parse(text):
    try:
        value = json.loads(text)
        return value if isinstance(value, dict) else {"ename": "Error", "evalue": str(value)}
    except ValueError:
        return {"ename": "Error", "evalue": str(text)}


if __name__ == "__main__":
    IPKernelApp.launch_instance(kernel_class=MechlensKernel)
