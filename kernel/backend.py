"""What makes two evcxr backends of the "Rust · mechlens" kernel interchangeable, and the cell
that warms one up. Shared by the kernel's front (proxy.py) and the kernel on standby
(standby.py), which hands a warmed backend to the next front that matches it.
"""

import hashlib
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# A cell that evcxr analyses (types of a `let` that touches tch, polars and mechlens' `?`) and
# then rejects with a type error: the analysis is the point, the error stops it before code
# generation, and a failed cell leaves no variable behind. evcxr's first `let` makes
# rust-analyzer read the whole crate graph behind mechlens (~10 s on 2 cores).
WARM_UP_CELL = (
    'let mechlens_warm_up = (Tensor::zeros([1], (Kind::Float, Device::Cpu)).sum(Kind::Float), '
    'df!("x" => &[1i64])?.height(), LoadOptions::default()); let mechlens_warm_up_end: () = 0u8;'
)

# The environment a backend's cells see, as far as it can change what they do: threads, the
# library's location and settings, libtorch, the toolchain, the network. Per-process variables
# (Jupyter's session name, the shell's PWD) are left out, so that the kernel a notebook's
# restart launches matches the one started for the notebook before it.
ENV_PREFIXES = ("MECHLENS_", "OMP_", "MKL_", "OPENBLAS_", "RAYON_", "POLARS_", "TORCH_", "CUDA_",
                "LIBTORCH", "RUST", "CARGO", "EVCXR_", "MIMALLOC_", "LD_", "MALLOC_")
ENV_NAMES = {"PATH", "HOME", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY",
             "http_proxy", "https_proxy", "all_proxy", "no_proxy"}
# The standby's own switches: they decide whether a backend is handed over, not what it does.
ENV_IGNORED_PREFIX = "MECHLENS_STANDBY"


def env_fingerprint(env=None) -> str:
    env = os.environ if env is None else env
    relevant = sorted(
        (name, value) for name, value in env.items()
        if (name in ENV_NAMES or name.startswith(ENV_PREFIXES)) and not name.startswith(ENV_IGNORED_PREFIX)
    )
    return hashlib.sha256(repr(relevant).encode()).hexdigest()[:16]


def library_fingerprint(env=None) -> str:
    """The sizes and times of mechlens' library sources (crates/, Cargo.lock): a few ms to read."""
    env = os.environ if env is None else env
    crates = Path(env["MECHLENS_CRATE"]) if "MECHLENS_CRATE" in env else ROOT / "crates"
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
    return hashlib.sha256(repr(sorted(entries)).encode()).hexdigest()[:16]


def set_current_dir_cell(path: str) -> str:
    """A cell that moves the cells' process to `path` (a backend started elsewhere)."""
    # A raw string ends at a quote followed by its number of hashes: use one more than any
    # run of hashes after a quote in the path.
    longest = max((len(part) - len(part.lstrip("#")) for part in path.split('"')[1:]), default=0)
    hashes = "#" * (longest + 1)
    return f'std::env::set_current_dir(r{hashes}"{path}"{hashes}).ok();'
