"""One of our benchmark examples kept running: built once, it prints `ready`, then answers each
command line on stdin with the milliseconds one timed run took. The drivers interleave these
runs with their Python peers' in the same rounds."""

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class ServedExample:
    def __init__(self, package, example, args, env=None):
        subprocess.run(["cargo", "build", "-q", "-p", package, "--example", example], cwd=ROOT, check=True)
        exe = ROOT / "target" / "debug" / "examples" / example
        self.proc = subprocess.Popen([str(exe), *map(str, args)], cwd=ROOT, env=dict(os.environ, **(env or {})),
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError(f"{example} did not start")

    def run(self, command):
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return float(self.proc.stdout.readline())

    def close(self):
        self.proc.stdin.close()
        self.proc.wait()
