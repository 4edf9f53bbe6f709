"""Model benchmarks for `make bench`: a GPT-2-small-shaped random model (12 layers, 768 wide,
50,257 tokens) on the CPU with 2 threads, batch 1x16 and 8x128. Ours (forward without hooks,
run_with_cache with every hook) beside Hugging Face's forward and TransformerLens'
run_with_cache, measured in the same run. Medians of several runs after a warm-up.

Writes the "Hooked transformer" section of BENCHMARKS.md and the `model` group of
bench/results.json.
"""

import os
import ctypes
import platform
import statistics
import sys
import time
from datetime import date
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from report import write_results, write_section  # noqa: E402
from served_example import ServedExample  # noqa: E402

THREADS = 2
SHAPES = [(1, 16, 30), (8, 128, 10)]  # batch, positions, rounds
MODEL = ROOT / ".cache" / "bench" / "gpt2-small-random"


def build_model():
    from transformers import GPT2Config, GPT2LMHeadModel

    if (MODEL / "model.safetensors").is_file():
        return
    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config()).save_pretrained(MODEL, safe_serialization=True)


def peer_models():
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
    return hf, tl.eval()


def ours(batch, pos, keep_freed_memory=True):
    """Our forward_bench example (commands `forward`, `cache`)."""
    return ServedExample("mechlens-models", "forward_bench", [MODEL, batch, pos, THREADS],
                         env={"MECHLENS_KEEP_FREED_MEMORY": "1" if keep_freed_memory else "0"})


def keep_freed_memory():
    """The malloc settings mechlens applies on model load (crates/mechlens-core/src/allocator.rs),
    applied to this process too, so that the peers are measured under the same allocator."""
    libc = ctypes.CDLL("libc.so.6")
    m_trim_threshold, m_mmap_threshold = -1, -3
    ok = libc.mallopt(m_mmap_threshold, 1 << 30) == 1 and libc.mallopt(m_trim_threshold, 2**31 - 1) == 1
    if not ok:
        raise RuntimeError("mallopt failed")


def timed_ms(fn):
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1e3


def measure(hf, tl, batch, pos, rounds):
    """Per round one run of each, in turn; medians of the times and of the per-round ratios."""
    mine, glibc = ours(batch, pos), ours(batch, pos, keep_freed_memory=False)
    tokens = torch.randint(0, hf.config.vocab_size, (batch, pos), generator=torch.Generator().manual_seed(0))
    times = {"hf": [], "tl": [], "forward": [], "cache": [], "cache_glibc": []}
    with torch.no_grad():
        hf(tokens), tl.run_with_cache(tokens)  # warm-up
        for _ in range(rounds):
            times["hf"].append(timed_ms(lambda: hf(tokens)))
            times["forward"].append(mine.run("forward"))
            times["cache"].append(mine.run("cache"))
            times["cache_glibc"].append(glibc.run("cache"))
            times["tl"].append(timed_ms(lambda: tl.run_with_cache(tokens)))
    mine.close()
    glibc.close()
    med = {k: statistics.median(v) for k, v in times.items()}
    ratio = {
        k: statistics.median(a / b for a, b in zip(times[num], times[den]))
        for k, (num, den) in {"forward/hf": ("forward", "hf"), "cache/hf": ("cache", "hf"),
                              "cache/tl": ("cache", "tl"),
                              "cache_glibc/hf": ("cache_glibc", "hf")}.items()
    }
    return med, ratio


def main():
    torch.set_num_threads(THREADS)
    keep_freed_memory()
    build_model()
    hf, tl = peer_models()
    machine = f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"
    rows, results = [], []
    for batch, pos, rounds in SHAPES:
        med, ratio = measure(hf, tl, batch, pos, rounds)
        shape = f"{batch}x{pos}"
        rows.append((shape, med, ratio))
        for name, value, peer_value, peer, r in [
            (f"forward without hooks {shape}", med["forward"], med["hf"], "HF transformers forward", ratio["forward/hf"]),
            (f"run_with_cache all hooks {shape}", med["cache"], med["hf"], "HF transformers forward", ratio["cache/hf"]),
            (f"run_with_cache all hooks vs TL {shape}", med["cache"], med["tl"], "TransformerLens run_with_cache",
             ratio["cache/tl"]),
            (f"run_with_cache all hooks, glibc malloc defaults {shape}", med["cache_glibc"], med["hf"],
             "HF transformers forward", ratio["cache_glibc/hf"]),
        ]:
            results.append({"name": name, "value": round(value, 2), "unit": "ms", "peer_value": round(peer_value, 2),
                            "peer": peer, "ratio": round(r, 3), "date": date.today().isoformat(), "machine": machine})
    write_results("model", results)
    lines = [
        "## Hooked transformer",
        "",
        f"Measured {date.today().isoformat()} on {machine}; torch {torch.__version__}, {THREADS} threads, CPU.",
        "GPT-2-small-shaped random model (12 layers, d_model 768, vocab 50,257), f32. Each round runs HF's "
        "forward, ours without hooks, ours with every hook cached and TL's run_with_cache once each, in turn, "
        "after a warm-up (" + ", ".join(f"{r} rounds at {b}x{p}" for b, p, r in SHAPES) + "). Times are medians; "
        "ratios are medians of the per-round ratios, which a slow spell of the shared machine affects less. "
        "mechlens keeps freed tensor memory for reuse (glibc's mmap/trim thresholds raised on model load, "
        "see crates/mechlens-core/src/allocator.rs); the Python peers run with the same settings, so the ratios "
        "compare the models. The last column is ours with glibc's defaults (`MECHLENS_KEEP_FREED_MEMORY=0`), "
        "where every pass page-faults its activations in afresh.",
        "Goal: run_with_cache ≤ 1.1× HF forward at 1x16 and ≤ 1.05× at 8x128.",
        "",
        "| batch×pos | ours forward | ours run_with_cache (all) | HF forward | TL run_with_cache | forward / HF | cache / HF | cache / TL | cache / HF, glibc defaults |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for shape, med, ratio in rows:
        lines.append(f"| {shape} | {med['forward']:.1f} ms | {med['cache']:.1f} ms | {med['hf']:.1f} ms | {med['tl']:.1f} ms "
                     f"| {ratio['forward/hf']:.2f}× | {ratio['cache/hf']:.2f}× | {ratio['cache/tl']:.2f}× "
                     f"| {ratio['cache_glibc/hf']:.2f}× |")
    write_section("Hooked transformer", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
