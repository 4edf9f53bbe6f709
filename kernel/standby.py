"""A "Rust · mechlens" kernel on standby: evcxr started in a warm build slot, the prelude built
and rust-analyzer warm, waiting for the next kernel of the same Jupyter to take it over.

A kernel's start is mostly evcxr's rust-analyzer reading the ~430 crates behind the prelude
(~15-25 s on 2 cores, BENCHMARKS.md), and evcxr offers no way to keep that between processes.
A Python kernel starts in about a second; a reader who restarts a notebook expects the same.
So once a kernel has sat idle for a few seconds (the reader is reading), its front (proxy.py)
starts one standby in the background, and the next kernel's front takes it over instead of
starting evcxr from nothing: a restart, or the next notebook opened, answers its first cell in
about a second. `make lab` starts one before JupyterLab.

Lifetime, so that nothing is left behind:
- one standby at a time (a lock in the standby folder), only in a warm build slot (a cold one
  would compile for minutes beside the reader's kernel);
- taken over: it watches its new owner (the front's pid) and ends the backend when the owner
  is gone, however it died; a clean shutdown ends the backend first, and then the standby;
- not taken: it quits when the Jupyter server that started it exits, when mechlens' sources
  change (its backend would be stale), or after MECHLENS_STANDBY_MAX_IDLE_S (3 h);
- a front whose environment or library differs does not take it: it retires it, which frees
  its build slot, and starts evcxr itself.

The hand-over is a file: the front creates `claim` in the standby's folder (atomically, with its
pid in it); the standby creates it with "retire" when it decides to quit. Whoever creates it
first wins.

MECHLENS_STANDBY=0 turns standbys off (`make test` does; its kernels must not share state).

Usage: standby.py start --server-pid PID [--cwd DIR]
           a standby in the background, with the environment the "mechlens" kernelspec gives
           its kernels (`make lab`, before JupyterLab, with PID the shell it execs into)
       standby.py serve --server-pid PID   (what start and spawn() run, detached)
"""

import argparse
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from backend import ROOT, WARM_UP_CELL, env_fingerprint, library_fingerprint  # noqa: E402

POLL_S = 0.5
# Reading mechlens' sources' sizes and times takes a few ms: every 5 s, not every poll.
LIBRARY_CHECK_S = 5
RETIRE = "retire"
# A warm slot starts evcxr in well under a minute; a loaded machine, a few.
STARTUP_TIMEOUT_S = 900
# launch's exit status when the free slot is not warm (see kernel/launch).
NO_WARM_SLOT = 75


def enabled(env=None) -> bool:
    return (os.environ if env is None else env).get("MECHLENS_STANDBY", "1") != "0"


def standby_root(env=None) -> Path:
    env = os.environ if env is None else env
    return Path(env.get("MECHLENS_STANDBY_DIR", ROOT / ".cache" / "kernel-standby"))


def max_unclaimed_s(env=None) -> float:
    return float((os.environ if env is None else env).get("MECHLENS_STANDBY_MAX_IDLE_S", 3 * 3600))


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie has exited; its parent just has not reaped it yet
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


# --- the front's side ---------------------------------------------------------------------------


def spawn(cwd, server_pid, env=None):
    """Starts a standby in the background (it quits at once if one exists), with `env` (this
    process's by default) as Jupyter would give a kernel: the kernelspec's `env` over it. It is
    detached from the caller: `sh ... &` reparents it, and it makes its own session, so that
    Jupyter's kill of the caller's process group does not reach it."""
    env = kernelspec_env(os.environ if env is None else env)
    root = standby_root(env)
    root.mkdir(parents=True, exist_ok=True)
    env["MECHLENS_STANDBY_LOG"] = str(root / "standby.log")
    subprocess.run(
        ["sh", "-c", '"$@" </dev/null >>"$MECHLENS_STANDBY_LOG" 2>&1 &', "sh",
         sys.executable, str(Path(__file__).resolve()), "serve", "--server-pid", str(server_pid)],
        cwd=cwd, env=env, check=False)


def standbys(env=None):
    """(folder, info) of every live standby; the folders of dead ones are removed."""
    found = []
    root = standby_root(env)
    if not root.is_dir():
        return found
    for folder in root.iterdir():
        info = _read_info(folder)
        if info is None:
            continue
        if pid_alive(info["pid"]):
            found.append((folder, info))
        elif not (folder / "claim").exists() or not pid_alive(_claim_owner(folder)):
            shutil.rmtree(folder, ignore_errors=True)
    return found


def claim(owner_pid, library, env=None):
    """Takes over a ready standby that matches this environment and `library` (the caller's
    library_fingerprint). Returns (its info, with `connection_file`, or None; a matching standby
    still warming up, which the caller may wait for, or None; the pids of the standbys retired
    because they do not match, which quit within a second and free their build slots)."""
    env = os.environ if env is None else env
    wanted = {"env": env_fingerprint(env), "library": library}
    taken, warming, retired = None, None, []
    for folder, info in standbys(env):
        if (folder / "claim").exists():
            continue
        if all(info.get(k) == v for k, v in wanted.items()):
            if taken is None and info["state"] == "ready" and _create_claim(folder, str(owner_pid)):
                taken = info
                continue
            if warming is None and info["state"] == "warming":
                warming = info
                continue
        retired += retire(folder)
    return taken, warming, retired


def state_of(folder: Path):
    """"warming", "ready", "taken" (claimed or retiring) or None (gone)."""
    info = _read_info(folder)
    if info is None or not pid_alive(info["pid"]):
        return None
    return "taken" if (folder / "claim").exists() else info["state"]


def take(folder: Path, owner_pid):
    """Takes over the standby in `folder`: its info, or None if another kernel was first."""
    info = _read_info(folder)
    if (info is None or info["state"] != "ready" or not pid_alive(info["pid"])
            or not _create_claim(folder, str(owner_pid))):
        return None
    return info


def retire(folder: Path):
    """Tells the standby in `folder` to quit, unless it is taken; returns [its pid] or []."""
    info = _read_info(folder)
    return [info["pid"]] if info is not None and _create_claim(folder, RETIRE) else []


def retire_all(env=None):
    """Retires every standby not taken over; returns their pids."""
    return [pid for folder, _ in standbys(env) for pid in retire(folder)]


def standby_running(env=None) -> bool:
    """Whether a standby is warming or waiting (not taken over)."""
    return any(not (folder / "claim").exists() for folder, _ in standbys(env))


def _read_info(folder: Path):
    """A standby's info.json (written whole by write_info), or None."""
    try:
        return json.loads((folder / "info.json").read_text())
    except (OSError, ValueError):
        return None


def _create_claim(folder: Path, content: str) -> bool:
    """Creates `claim` with `content` unless it exists. The content is written to a file of
    its own first and then linked in (link fails if the name exists), so whoever reads `claim`
    never sees it empty."""
    draft = folder / f"claim.{os.getpid()}.{time.monotonic_ns()}"
    try:
        draft.write_text(content)
        os.link(draft, folder / "claim")
        return True
    except (FileExistsError, FileNotFoundError):
        return False  # taken by someone else, or the standby just quit
    finally:
        draft.unlink(missing_ok=True)


def _claim_owner(folder: Path) -> int:
    try:
        text = (folder / "claim").read_text().strip()
    except OSError:
        return 0
    return int(text) if text.isdigit() else 0


# --- the standby's side -------------------------------------------------------------------------


def kernelspec_env(env):
    """`env` with the "mechlens" kernelspec's `env` over it: what Jupyter gives the kernels it
    starts."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    env = dict(env)
    try:
        env.update(KernelSpecManager().get_kernel_spec("mechlens").env)
    except NoSuchKernel:
        pass
    return env


def log(message):
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} standby {os.getpid()}: {message}", flush=True)


def write_info(folder: Path, info: dict):
    tmp = folder / "info.json.tmp"
    tmp.write_text(json.dumps(info))
    os.replace(tmp, folder / "info.json")


def serve(folder, info, backend, server_pid, lock):
    """Warms the backend, then waits for a claim; returns a line saying why it ended. Once
    taken over, it lets go of `lock`, so that the new owner can start the next standby."""
    from jupyter_client.blocking import BlockingKernelClient

    client = BlockingKernelClient()
    client.load_connection_file(info["connection_file"])
    client.start_channels()
    started = time.monotonic()
    next_library_check = started
    warmed = False
    try:
        while True:
            code = backend.poll()
            if code is not None:
                return ("no warm build slot was free" if code == NO_WARM_SLOT
                        else f"the backend exited with status {code}")
            owner = _claim_owner(folder)
            if (folder / "claim").exists() and owner == 0:
                return "retired (a kernel of another environment or library, or with standbys off)"
            if owner and not lock.closed:
                lock.close()
                log(f"taken over by {owner}")
            if owner and not pid_alive(owner):
                return f"its owner {owner} is gone"
            if not owner:
                check_library = time.monotonic() >= next_library_check
                if check_library:
                    next_library_check = time.monotonic() + LIBRARY_CHECK_S
                why = quit_reason(info, server_pid, started, check_library)
                if why and _create_claim(folder, RETIRE):
                    return why
            if not warmed:
                if time.monotonic() - started > STARTUP_TIMEOUT_S:
                    return "evcxr did not start in time"
                try:
                    client.wait_for_ready(timeout=2)
                except RuntimeError:
                    continue
                run_silently(client, WARM_UP_CELL)
                warmed = True
                client.stop_channels()  # the owner talks to evcxr on its own connection
                info["state"] = "ready"
                write_info(folder, info)
                log(f"ready after {time.monotonic() - started:.1f} s")
                continue
            time.sleep(POLL_S)
    finally:
        if not warmed:
            client.stop_channels()


def quit_reason(info, server_pid, started, check_library):
    if server_pid and not pid_alive(server_pid):
        return f"the Jupyter server {server_pid} that started it is gone"
    if check_library and library_fingerprint() != info["library"]:
        return "mechlens' sources changed"
    if time.monotonic() - started > max_unclaimed_s():
        return "nobody took it over"
    return None


def run_silently(client, code):
    """Runs one cell and waits for its end; its outcome does not matter."""
    msg_id = client.execute(code, silent=True, store_history=False)
    while True:
        reply = client.get_shell_msg(timeout=600)
        if reply["parent_header"].get("msg_id") == msg_id:
            return


def stop_backend(backend):
    """Ends the backend (kernel/launch, evcxr and the cells' process: this process group)."""
    if backend.poll() is not None:
        return
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    os.killpg(os.getpgrp(), signal.SIGTERM)
    try:
        backend.wait(timeout=5)
    except subprocess.TimeoutExpired:
        os.killpg(os.getpgrp(), signal.SIGKILL)  # ends this process too, as intended


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["start", "serve"])
    parser.add_argument("--server-pid", type=int, default=0,
                        help="quit when this process (the Jupyter server) is gone")
    parser.add_argument("--cwd", default=".", help="the working directory of its cells")
    args = parser.parse_args(argv)
    if args.command == "start":
        if enabled():
            spawn(args.cwd, args.server_pid)
        return 0
    try:
        os.setsid()
    except OSError:
        pass  # already a session leader
    root = standby_root()
    root.mkdir(parents=True, exist_ok=True)
    lock = open(root / "spawn.lock", "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return 0  # one standby at a time
    # Under the lock: no other standby is warming or waiting, so a folder left by one that
    # was killed can go.
    standbys()
    folder = root / str(os.getpid())
    folder.mkdir()
    from jupyter_client.connect import write_connection_file

    connection_file, _ = write_connection_file(str(folder / "connection.json"), ip="127.0.0.1",
                                               transport="tcp")
    info = {"pid": os.getpid(), "state": "warming", "cwd": os.getcwd(), "folder": str(folder),
            "connection_file": connection_file, "env": env_fingerprint(),
            "library": library_fingerprint()}
    write_info(folder, info)
    log(f"starting in {os.getcwd()}")
    backend = subprocess.Popen([str(ROOT / "kernel" / "launch"), connection_file],
                               env=dict(os.environ, MECHLENS_WARM_SLOT_ONLY="1"),
                               stdin=subprocess.DEVNULL)
    why = "interrupted"
    try:
        why = serve(folder, info, backend, args.server_pid, lock)
    finally:
        log(f"ending: {why}")
        shutil.rmtree(folder, ignore_errors=True)
        lock.close()
        stop_backend(backend)
    return 0


if __name__ == "__main__":
    sys.exit(main())
