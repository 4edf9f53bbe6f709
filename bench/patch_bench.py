"""Patching benchmark for `make bench`: full activation patching of resid_pre (every layer ×
position) on a GPT-2-small-shaped random model with a 20-token prompt, ours beside
TransformerLens' `patching.get_act_patch_resid_pre`, and our attribution patching of the
same. CPU, 2 threads; rounds interleave the three so a slow spell hits all alike.

Writes the "Activation patching" section of BENCHMARKS.md and the `patching` group of
bench/results.json.
"""

import os
import platform
import statistics
import sys
import time
from datetime import date
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from model_bench import MODEL, THREADS, build_model, keep_freed_memory, peer_models  # noqa: E402
from report import write_results, write_section  # noqa: E402
from served_example import ServedExample  # noqa: E402

POS = 20
ROUNDS = 3


def main():
    torch.set_num_threads(THREADS)
    keep_freed_memory()
    build_model()
    from transformer_lens import patching

    _, tl = peer_models()
    g = torch.Generator().manual_seed(0)
    clean = torch.randint(0, tl.cfg.d_vocab, (1, POS), generator=g)
    corrupted = clean.clone()
    corrupted[:, : POS // 2] = torch.randint(0, tl.cfg.d_vocab, (1, POS // 2), generator=g)
    _, clean_cache = tl.run_with_cache(clean)

    def metric(logits):
        return logits[:, -1, 0].mean() - logits[:, -1, 1].mean()

    def tl_patch():
        start = time.perf_counter()
        with torch.no_grad():
            patching.get_act_patch_resid_pre(tl, corrupted, clean_cache, metric)
        return (time.perf_counter() - start) * 1e3

    ours = ServedExample("mechlens-analysis", "patch_bench", [MODEL, POS, THREADS])
    times = {"tl": [], "activation": [], "attribution": []}
    for _ in range(ROUNDS):
        times["tl"].append(tl_patch())
        times["activation"].append(ours.run("activation"))
        times["attribution"].append(ours.run("attribution"))
    ours.close()
    med = {k: statistics.median(v) for k, v in times.items()}
    ratio = statistics.median(a / b for a, b in zip(times["activation"], times["tl"]))
    attr_ratio = statistics.median(a / b for a, b in zip(times["attribution"], times["activation"]))
    machine = f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"
    today = date.today().isoformat()
    write_results("patching", [
        {"name": "activation patching resid_pre, all layers x 20 positions", "value": round(med["activation"], 1),
         "unit": "ms", "peer_value": round(med["tl"], 1), "peer": "TransformerLens patching.get_act_patch_resid_pre",
         "ratio": round(ratio, 3), "date": today, "machine": machine},
        {"name": "attribution patching resid_pre (vs our activation patching)", "value": round(med["attribution"], 1),
         "unit": "ms", "peer_value": round(med["activation"], 1), "peer": "mechlens activation_patch, same targets",
         "ratio": round(attr_ratio, 4), "date": today, "machine": machine},
    ])
    lines = [
        "## Activation patching",
        "",
        f"Measured {today} on {machine}; torch {torch.__version__}, {THREADS} threads, CPU.",
        f"GPT-2-small-shaped random model, one {POS}-token prompt, resid_pre patched at every layer × position "
        f"({12 * POS} patched runs), metric = a logit difference at the last position. {ROUNDS} rounds, each "
        "running TL, ours and our attribution patching once; medians, ratios per round. Both sides use the same "
        "malloc settings (see the hooked-transformer section).",
        "Goal: ours ≤ 0.5× TL.",
        "",
        "| | time | ratio |",
        "| --- | --- | --- |",
        f"| TransformerLens `get_act_patch_resid_pre` | {med['tl']:.0f} ms | |",
        f"| mechlens `activation_patch(.., PatchTarget::ResidPre, ..)` | {med['activation']:.0f} ms | {ratio:.2f}× TL |",
        f"| mechlens `attribution_patch` (one forward + backward) | {med['attribution']:.0f} ms | "
        f"{attr_ratio:.4f}× our activation patching |",
    ]
    write_section("Activation patching", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
