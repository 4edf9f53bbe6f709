"""SAE benchmarks for `make bench`:
- training steps per second on the same random activations and settings as SAELens'
  `SAETrainer` (d_in 512, d_sae 4096, batch 4096, CPU, 2 threads), for a ReLU SAE and a TopK
  SAE (k = 32) from their initialisations, and for a ReLU SAE that both start from the same
  weights with about 1% of latents active, as in a trained SAE; ours is the `train_bench`
  example. SAELens runs twice: in this process, under the malloc settings mechlens applies to
  itself (the ratio compares the training steps), and in a child process under glibc's
  defaults (`--serve-saelens`: SAELens as a user installs and runs it);
- the activation store's tokens/s beside a bare forward of the same model over the same
  windows (the GPT-2-small-shaped random model of model_bench.py, 16 windows of 128); ours is
  the `store_bench` example.
Rounds interleave the runs compared so a slow spell hits both alike.

Writes the "SAE training" section of BENCHMARKS.md and the `sae` group of bench/results.json.
"""

import os
import platform
import shutil
import tempfile
import statistics
import sys
import time
from datetime import date
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from model_bench import MODEL, THREADS, build_model, keep_freed_memory  # noqa: E402
from report import write_results, write_section  # noqa: E402
from served_example import ServedExample, ServedProcess  # noqa: E402

D_IN, D_SAE, BATCH, K = 512, 4096, 4096, 32
STEPS = 5
ROUNDS = 3
# The sparse start: encoder biases this far below zero leave ~1% of latents active on these
# activations (pre-activations have a standard deviation of ~0.1 at SAELens' initialisation).
SPARSE_B_ENC = -0.25
WINDOWS, CONTEXT = 16, 128


def sparse_start(folder):
    """SAELens' initialisation of a ReLU SAE with its encoder biases at SPARSE_B_ENC, saved as an
    SAELens folder both sides start from; returns its L0 on the first batch."""
    from sae_lens.saes.standard_sae import StandardTrainingSAE, StandardTrainingSAEConfig

    torch.manual_seed(1)
    sae = StandardTrainingSAE(StandardTrainingSAEConfig(d_in=D_IN, d_sae=D_SAE, l1_coefficient=5.0))
    with torch.no_grad():
        sae.b_enc.fill_(SPARSE_B_ENC)
    sae.save_inference_model(folder)
    with torch.no_grad():
        return (sae.encode(activations()[:BATCH]) > 0).float().sum(-1).mean().item()


def activations():
    g = torch.Generator().manual_seed(0)
    return torch.randn(8 * BATCH, D_IN, generator=g)


def saelens_trainer(kind, start=None):
    from sae_lens.config import LoggingConfig, SAETrainerConfig
    from sae_lens.saes.standard_sae import StandardTrainingSAE, StandardTrainingSAEConfig
    from sae_lens.saes.topk_sae import TopKTrainingSAE, TopKTrainingSAEConfig
    from sae_lens.training.sae_trainer import SAETrainer

    if kind.startswith("standard"):
        sae = StandardTrainingSAE(StandardTrainingSAEConfig(d_in=D_IN, d_sae=D_SAE, l1_coefficient=5.0))
    else:
        sae = TopKTrainingSAE(TopKTrainingSAEConfig(d_in=D_IN, d_sae=D_SAE, k=K))
    if start is not None:
        from safetensors.torch import load_file

        sae.load_state_dict(load_file(Path(start) / "sae_weights.safetensors"))
    acts = activations()

    def batches():
        i = 0
        while True:
            yield acts[(i % 8) * BATCH:(i % 8 + 1) * BATCH]
            i += 1

    cfg = SAETrainerConfig(total_training_samples=10**9, train_batch_size_samples=BATCH, lr_end=3e-5,
                           logger=LoggingConfig(log_to_wandb=False))
    return SAETrainer(cfg=cfg, sae=sae, data_provider=batches())


def serve_saelens():
    """`--serve-saelens`: SAELens under glibc's default malloc settings, answering each stdin
    line (`KIND` or `KIND START_DIR`) with the milliseconds of `time_saelens`."""
    torch.set_num_threads(THREADS)
    print("ready", flush=True)
    for line in sys.stdin:
        kind, *start = line.split()
        print(time_saelens(kind, start[0] if start else None), flush=True)


def time_saelens(kind, start=None):
    trainer = saelens_trainer(kind, start)

    def step():  # what SAETrainer.fit does per step, without its progress bar
        trainer.step(next(trainer.data_provider))
        trainer.n_training_steps += 1

    step()  # untimed, as ours
    start = time.perf_counter()
    for _ in range(STEPS):
        step()
    return (time.perf_counter() - start) * 1e3


def main():
    torch.set_num_threads(THREADS)
    keep_freed_memory()
    start = tempfile.mkdtemp(prefix="mechlens-sae-bench-")
    start_l0 = sparse_start(start)
    ours = ServedExample("mechlens-sae", "train_bench", [D_IN, D_SAE, BATCH, THREADS])
    installed = ServedProcess([sys.executable, __file__, "--serve-saelens"])  # glibc's defaults
    commands = {"standard": f"standard {STEPS}", "topk": f"topk {K} {STEPS}",
                "standard-sparse": f"standard-from {start} {STEPS}"}
    starts = {"standard-sparse": start}
    peers = ("saelens", "installed")
    times = {(k, who): [] for k in commands for who in ("ours",) + peers}
    for _ in range(ROUNDS):
        for kind, command in commands.items():
            times[(kind, "saelens")].append(time_saelens(kind, starts.get(kind)))
            times[(kind, "installed")].append(installed.run(f"{kind} {starts.get(kind, '')}"))
            times[(kind, "ours")].append(ours.run(command))
    ours.close()
    installed.close()
    shutil.rmtree(start, ignore_errors=True)
    tok_s = {key: statistics.median(BATCH * STEPS / (ms / 1e3) for ms in v) for key, v in times.items()}
    speedup = {(k, peer): statistics.median(s / o for o, s in zip(times[(k, "ours")], times[(k, peer)]))
               for k in commands for peer in peers}
    machine = f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"
    today = date.today().isoformat()
    names = {"standard": "ReLU SAE (L1)", "topk": f"TopK SAE (k={K})",
             "standard-sparse": f"ReLU SAE (L1), from weights with L0 ≈ {start_l0:.0f}"}
    peer_names = {"saelens": "SAELens SAETrainer.step, with mechlens' malloc settings",
                  "installed": "SAELens SAETrainer.step, glibc's default malloc settings"}
    suffix = {"saelens": "", "installed": ", vs SAELens as installed"}
    write_results("sae", [
        {"name": f"SAE training throughput, {names[k]}, d_in {D_IN}, d_sae {D_SAE}, batch {BATCH}{suffix[peer]}",
         "value": round(tok_s[(k, "ours")]), "unit": "tokens/s", "peer_value": round(tok_s[(k, peer)]),
         "peer": peer_names[peer], "ratio": round(speedup[(k, peer)], 3), "date": today, "machine": machine}
        for peer in peers for k in commands
    ])
    lines = [
        "## SAE training",
        "",
        f"Measured {today} on {machine}; torch {torch.__version__}, {THREADS} threads, CPU.",
        f"Random activations d_in {D_IN}, d_sae {D_SAE}, batch {BATCH}; SAELens' defaults on both sides (Adam 3e-4, "
        f"clipping 1.0, decoder init norm 0.1). {ROUNDS} rounds of {STEPS} timed steps each (after one untimed step), "
        "ours and SAELens' `SAETrainer.step` interleaved; medians, speed-ups per round. "
        "The first two start from each library's initialisation (about half the ReLU SAE's latents active); "
        f"the third starts both from one ReLU SAE whose encoder biases are {SPARSE_B_ENC} "
        f"(L0 {start_l0:.0f} of {D_SAE} on the first batch, the regime a trained SAE is in).",
        "SAELens runs under two allocators: mechlens' malloc settings (glibc's mmap and trim thresholds raised, "
        "as mechlens does on load; this compares the training steps) and glibc's defaults (SAELens as installed, "
        "where each `[4096, 4096]` tensor is page-faulted in afresh every step).",
        "Goal: ReLU ≥ 1.5× SAELens, TopK ≥ 2.5× SAELens.",
        "",
        "| SAE | mechlens | SAELens, same malloc settings | speed-up | SAELens as installed | speed-up |",
        "| --- | --- | --- | --- | --- | --- |",
    ] + [f"| {names[k]} | {tok_s[(k, 'ours')]:,.0f} tok/s | {tok_s[(k, 'saelens')]:,.0f} tok/s | "
         f"{speedup[(k, 'saelens')]:.2f}× | {tok_s[(k, 'installed')]:,.0f} tok/s | {speedup[(k, 'installed')]:.2f}× |"
         for k in commands]
    write_section("SAE training", "\n".join(lines))
    print("\n".join(lines))
    store_bench(today, machine)


def store_bench(today, machine):
    """Activation store vs a bare forward: tokens/s over the same windows, same batches."""
    build_model()
    ours = ServedExample("mechlens-sae", "store_bench", [MODEL, WINDOWS, CONTEXT, THREADS])
    commands = {"forward": "forward", "trunk": "trunk", "last": "store 11", "middle": "store 5"}
    times = {k: [] for k in commands}
    for _ in range(ROUNDS):
        for key, command in commands.items():
            times[key].append(ours.run(command))
    ours.close()
    tokens = WINDOWS * CONTEXT
    tok_s = {k: statistics.median(tokens / (ms / 1e3) for ms in v) for k, v in times.items()}
    ratio = {k: statistics.median(f / s for f, s in zip(times["forward"], times[k])) for k in ("last", "middle")}
    hooks = {"last": "blocks.11.hook_resid_post", "middle": "blocks.5.hook_resid_post"}
    trunk = statistics.median(t / s for t, s in zip(times["trunk"], times["last"]))
    write_results("sae_store", [
        {"name": f"Activation store throughput at {hooks[k]}, GPT-2-small random, {WINDOWS}x{CONTEXT}",
         "value": round(tok_s[k]), "unit": "tokens/s", "peer_value": round(tok_s["forward"]),
         "peer": "our bare forward (logits) over the same windows", "ratio": round(ratio[k], 3),
         "date": today, "machine": machine}
        for k in ("last", "middle")
    ] + [
        {"name": f"Activation store throughput at {hooks['last']} vs the same blocks without the store, "
                 f"GPT-2-small random, {WINDOWS}x{CONTEXT}",
         "value": round(tok_s["last"]), "unit": "tokens/s", "peer_value": round(tok_s["trunk"]),
         "peer": "our forward_to_layer(12) over the same windows", "ratio": round(trunk, 3),
         "date": today, "machine": machine}
    ])
    lines = [
        "## Activation store",
        "",
        f"Measured {today} on {machine}; {THREADS} threads, CPU. GPT-2-small-shaped random model, "
        f"{WINDOWS} windows of {CONTEXT} tokens in batches of 8, {ROUNDS} interleaved rounds, medians. "
        "The store stops after the hook's block (`run_to_hook`); the bare forward computes logits.",
        "Goal: the store ≥ 90% of a bare forward's tokens/s.",
        "",
        "| hook | store | bare forward | store / forward |",
        "| --- | --- | --- | --- |",
    ] + [f"| {hooks[k]} | {tok_s[k]:,.0f} tok/s | {tok_s['forward']:,.0f} tok/s | {ratio[k]:.2f}× |"
         for k in ("last", "middle")] + [
        "",
        f"Against the same 12 blocks without the store (`forward_to_layer(12)`, {tok_s['trunk']:,.0f} tok/s), "
        f"the store (hooking, copying rows out, finiteness check) runs at {trunk:.2f}× that rate.",
    ]
    write_section("Activation store", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    serve_saelens() if sys.argv[1:] == ["--serve-saelens"] else main()
