"""A benchmark process kept running: it prints `ready`, then answers each command line on stdin
with the milliseconds one timed run took. `ServedExample` is one of our cargo examples, built
once; the drivers interleave its runs with their Python peers' in the same rounds."""

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class ServedProcess:
    def __init__(self, argv, env=None):
        self.proc = subprocess.Popen([str(a) for a in argv], cwd=ROOT, env=dict(os.environ, **(env or {})),
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError(f"{argv[0]} did not start")

    def run(self, command):
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return float(self.proc.stdout.readline())

    def close(self):
        self.proc.stdin.close()
        self.proc.wait()


class ServedExample(ServedProcess):
    def __init__(self, package, example, args, env=None):
        subprocess.run(["cargo", "build", "-q", "-p", package, "--example", example], cwd=ROOT, check=True)
        super().__init__([ROOT / "target" / "debug" / "examples" / example, *args], env)
