"""Training benchmarks of models built from scratch, for `make bench`:
- the toy model of superposition (5 features in 2 dimensions, 10 instances, batch 1024,
  AdamW 1e-3) against the same model and optimiser written in plain PyTorch;
- the 2-layer attention-only induction model (d_model 64, 4 heads of 16, vocabulary and
  context 64, LayerNorm, batch 32, AdamW 2e-3) against TransformerLens' HookedTransformer
  with the same config and optimiser, on the same kind of batches (TransformerLens' batches
  are made before the clock starts; ours are made in the step, in Rust).
Ours is the `toy_train_bench` example. Both sides on 2 threads; rounds interleave them.

Writes the "Training from scratch" section of BENCHMARKS.md and the `train` group of
bench/results.json.
"""

import os
import platform
import statistics
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from report import write_results, write_section  # noqa: E402
from served_example import ServedExample  # noqa: E402

THREADS = 2
ROUNDS = 3
TMS_STEPS = 300
INDUCTION_STEPS = 100


def tms_pytorch(steps):
    """ARENA's toy model: W [instances, m, n], ReLU(Wᵀ W x + b), importance-weighted MSE."""
    k, n, m, batch = 10, 5, 2, 1024
    w = torch.nn.Parameter(torch.randn(k, m, n) * (2 / (n + m)) ** 0.5)
    b = torch.nn.Parameter(torch.zeros(k, n))
    importance, probability = torch.ones(k, n), torch.full((k, n), 0.05)
    opt = torch.optim.AdamW([w, b], lr=1e-3, weight_decay=0.0)

    def step():
        x = torch.rand(batch, k, n) * (torch.rand(batch, k, n) < probability)
        h = torch.einsum("bin,imn->bim", x, w)
        out = torch.relu(torch.einsum("bim,imn->bin", h, w) + b)
        loss = ((out - x) ** 2 * importance).mean((0, 2)).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()

    step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) * 1e3


def induction_batches(n, rng):
    out = []
    for _ in range(n):
        t = rng.integers(0, 64, (32, 64))
        for r in range(32):
            span = rng.integers(6, 25)
            first = 1 + rng.integers(0, 64 - 2 * span)
            earliest = first + span
            second = earliest + rng.integers(0, 64 - span - earliest + 1)
            t[r, second:second + span] = t[r, first:first + span]
        out.append(torch.tensor(t))
    return out


def induction_transformer_lens(steps, batches):
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    cfg = HookedTransformerConfig(n_layers=2, d_model=64, n_heads=4, d_head=16, d_vocab=64, n_ctx=64,
                                  attn_only=True, normalization_type="LN", seed=0)
    model = HookedTransformer(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)

    def step(tokens):
        loss = model(tokens, return_type="loss")
        opt.zero_grad()
        loss.backward()
        opt.step()

    step(batches[0])
    start = time.perf_counter()
    for i in range(steps):
        step(batches[1 + i])
    return (time.perf_counter() - start) * 1e3


def main():
    torch.set_num_threads(THREADS)
    batches = induction_batches(INDUCTION_STEPS + 1, np.random.default_rng(0))
    ours = ServedExample("mechlens-toys", "toy_train_bench", [THREADS])
    times = {key: [] for key in ("tms_ours", "tms_peer", "ind_ours", "ind_peer")}
    for _ in range(ROUNDS):
        times["tms_ours"].append(ours.run(f"tms {TMS_STEPS}"))
        times["tms_peer"].append(tms_pytorch(TMS_STEPS))
        times["ind_ours"].append(ours.run(f"induction {INDUCTION_STEPS}"))
        times["ind_peer"].append(induction_transformer_lens(INDUCTION_STEPS, batches))
    ours.close()
    rate = {key: statistics.median(
        (TMS_STEPS if key.startswith("tms") else INDUCTION_STEPS) / (ms / 1e3) for ms in v)
        for key, v in times.items()}
    ratio = {name: statistics.median(p / o for o, p in zip(times[f"{name}_ours"], times[f"{name}_peer"]))
             for name in ("tms", "ind")}
    machine = f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"
    today = date.today().isoformat()
    write_results("train", [
        {"name": "Toy model of superposition training, 5→2, 10 instances, batch 1024", "value": round(rate["tms_ours"], 1),
         "unit": "steps/s", "peer": "the same model and AdamW in plain PyTorch", "peer_value": round(rate["tms_peer"], 1),
         "ratio": round(ratio["tms"], 3), "date": today, "machine": machine},
        {"name": "2-layer attention-only induction model training step, batch 32x64", "value": round(rate["ind_ours"], 1),
         "unit": "steps/s", "peer": "TransformerLens HookedTransformer, same config, torch AdamW",
         "peer_value": round(rate["ind_peer"], 1), "ratio": round(ratio["ind"], 3), "date": today, "machine": machine},
    ])
    lines = [
        "## Training from scratch",
        "",
        f"Measured {today} on {machine}; torch {torch.__version__}, {THREADS} threads on both sides, CPU. "
        f"{ROUNDS} interleaved rounds of {TMS_STEPS} (toy) and {INDUCTION_STEPS} (induction) timed steps after one "
        "untimed step; medians, speed-ups per round. Goals: toy ≥ 2× plain PyTorch, induction step ≥ 1.3× "
        "TransformerLens.",
        "",
        "| model | mechlens | peer | speed-up |",
        "| --- | --- | --- | --- |",
        f"| toy model of superposition, 5→2, 10 instances, batch 1024 | {rate['tms_ours']:,.0f} steps/s | "
        f"{rate['tms_peer']:,.0f} steps/s (plain PyTorch) | {ratio['tms']:.2f}× |",
        f"| 2-layer attention-only, d_model 64, batch 32×64 | {rate['ind_ours']:,.0f} steps/s | "
        f"{rate['ind_peer']:,.0f} steps/s (TransformerLens) | {ratio['ind']:.2f}× |",
    ]
    write_section("Training from scratch", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
