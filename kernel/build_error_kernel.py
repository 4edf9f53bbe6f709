"""Stand-in kernel for when evcxr could not start, usually because mechlens does not build.

It takes the Jupyter connection evcxr could not serve and answers every cell with the error
evcxr printed and the compiler's messages (the launcher appends them to the log), so that
the notebook shows what to fix instead of a kernel that dies and restarts forever. Fix the
error, then restart the kernel.

Usage: build_error_kernel.py CONNECTION_FILE LOG_FILE
"""

import re
import sys

from ipykernel.kernelapp import IPKernelApp
from ipykernel.kernelbase import Kernel

# evcxr colours its errors for a terminal; the notebook shows plain text.
ANSI = re.compile(r"\x1b\[[0-9;]*m")
# evcxr's own stack trace says nothing to a notebook user; it runs up to the cargo output
# the launcher appends.
BACKTRACE = re.compile(r"Stack backtrace:.*?(?=\ncargo build of |\Z)", re.S)
LOG_FILE = sys.argv[2] if len(sys.argv) > 2 else ""


def startup_error() -> str:
    try:
        with open(LOG_FILE, encoding="utf-8", errors="replace") as f:
            text = ANSI.sub("", f.read())
        text = BACKTRACE.sub("", text).strip()
    except OSError as e:
        text = f"(the kernel's log {LOG_FILE} could not be read: {e})"
    return text or "(evcxr exited without a message)"


class BuildErrorKernel(Kernel):
    implementation = "mechlens-build-error"
    implementation_version = "1"
    banner = "mechlens could not start the Rust kernel"
    language_info = {"name": "rust", "mimetype": "text/rust", "file_extension": ".rs"}

    def do_execute(self, code, silent, store_history=True, user_expressions=None,
                   allow_stdin=False, *, cell_meta=None, cell_id=None):
        message = (
            "The Rust kernel could not start. Fix the error below, then restart the kernel.\n\n"
            + startup_error()
        )
        if not silent:
            self.send_response(self.iopub_socket, "stream", {"name": "stderr", "text": message})
        return {
            "status": "error",
            "execution_count": self.execution_count,
            "ename": "BuildError",
            "evalue": "the Rust kernel could not start",
            "traceback": [],
        }


if __name__ == "__main__":
    IPKernelApp.launch_instance(kernel_class=BuildErrorKernel, argv=["-f", sys.argv[1]])
