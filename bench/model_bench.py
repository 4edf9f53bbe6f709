"""Model benchmarks for `make bench`: a GPT-2-small-shaped random model (12 layers, 768 wide,
50,257 tokens) on the CPU with 2 threads, batch 1x16 and 8x128. Ours (forward without hooks,
run_with_cache with every hook) beside Hugging Face's forward and TransformerLens'
run_with_cache, measured in the same run. Medians of several runs after a warm-up.

Writes the "Hooked transformer" section of BENCHMARKS.md and the `model` group of
bench/results.json.
"""

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from report import write_results, write_section  # noqa: E402

THREADS = 2
SHAPES = [(1, 16, 20), (8, 128, 5)]  # batch, positions, timed runs
MODEL = ROOT / ".cache" / "bench" / "gpt2-small-random"


def build_model():
    from transformers import GPT2Config, GPT2LMHeadModel

    if (MODEL / "model.safetensors").is_file():
        return
    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config()).save_pretrained(MODEL, safe_serialization=True)


def median_ms(fn, runs):
    fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def peers(batch, pos, runs):
    from transformers import GPT2LMHeadModel
    from transformer_lens import HookedTransformer, HookedTransformerConfig
    from transformer_lens.pretrained.weight_conversions import convert_gpt2_weights

    hf = GPT2LMHeadModel.from_pretrained(MODEL).eval()
    c = hf.config
    cfg = HookedTransformerConfig(n_layers=c.n_layer, d_model=c.n_embd, n_heads=c.n_head, d_head=c.n_embd // c.n_head,
                                  d_mlp=4 * c.n_embd, d_vocab=c.vocab_size, n_ctx=c.n_positions, act_fn="gelu_new",
                                  normalization_type="LN", original_architecture="GPT2LMHeadModel")
    tl = HookedTransformer(cfg)
    tl.load_and_process_state_dict(convert_gpt2_weights(hf, cfg), fold_ln=False, center_writing_weights=False,
                                   center_unembed=False, fold_value_biases=False)
    tl.eval()
    tokens = torch.randint(0, c.vocab_size, (batch, pos), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        hf_ms = median_ms(lambda: hf(tokens), runs)
        tl_ms = median_ms(lambda: tl.run_with_cache(tokens), runs)
    return hf_ms, tl_ms


def ours(batch, pos, runs):
    out = subprocess.run(
        ["cargo", "run", "-q", "-p", "mechlens-models", "--example", "forward_bench", "--",
         str(MODEL), str(batch), str(pos), str(runs), str(THREADS)],
        cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    torch.set_num_threads(THREADS)
    build_model()
    machine = f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"
    rows, results = [], []
    for batch, pos, runs in SHAPES:
        hf_ms, tl_ms = peers(batch, pos, runs)
        o = ours(batch, pos, runs)
        shape = f"{batch}x{pos}"
        rows.append((shape, o["forward_ms"], o["cache_ms"], hf_ms, tl_ms))
        for name, value, peer_value, peer in [
            (f"forward without hooks {shape}", o["forward_ms"], hf_ms, "HF transformers forward"),
            (f"run_with_cache all hooks {shape}", o["cache_ms"], hf_ms, "HF transformers forward"),
            (f"run_with_cache all hooks vs TL {shape}", o["cache_ms"], tl_ms, "TransformerLens run_with_cache"),
        ]:
            results.append({"name": name, "value": round(value, 2), "unit": "ms", "peer_value": round(peer_value, 2),
                            "peer": peer, "date": date.today().isoformat(), "machine": machine})
    write_results("model", results)
    lines = [
        "## Hooked transformer",
        "",
        f"Measured {date.today().isoformat()} on {machine}; torch {torch.__version__}, {THREADS} threads, CPU.",
        "GPT-2-small-shaped random model (12 layers, d_model 768, vocab 50,257), f32; medians of "
        + ", ".join(f"{r} runs at {b}x{p}" for b, p, r in SHAPES) + ", after a warm-up; peers in the same run.",
        "Goal: run_with_cache ≤ 1.1× HF forward at 1x16 and ≤ 1.05× at 8x128.",
        "",
        "| batch×pos | ours forward | ours run_with_cache (all) | HF forward | TL run_with_cache | cache / HF | cache / TL |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for shape, fwd, cache, hf, tl in rows:
        lines.append(f"| {shape} | {fwd:.1f} ms | {cache:.1f} ms | {hf:.1f} ms | {tl:.1f} ms | {cache / hf:.2f}× | {cache / tl:.2f}× |")
    write_section("Hooked transformer", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
