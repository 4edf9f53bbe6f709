"""The cost of end-to-end SAE training, for `make bench`: one training step of the same SAE
(2,048 latents on BabyLlama's `blocks.2.hook_resid_pre`, batch 8 × 128 tokens of the model's
own samples) trained locally (MSE to its input: one forward pass of the model up to the hook,
no gradient through it), end to end (KL through every later layer: a clean pass and a spliced
pass with gradients) and end to end with downstream MSE terms. The figure is the ratio of an
e2e step to a local step of the same size (Braun et al. 2024 report the same kind of cost),
beside tokens/s. Ours is the `e2e_bench` example; 2 threads.

Writes the "End-to-end SAEs" section of BENCHMARKS.md and the `e2e` group of bench/results.json.
"""

import os
import platform
import statistics
import sys
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from report import write_results, write_section  # noqa: E402
from served_example import ServedExample  # noqa: E402

THREADS = 2
ROUNDS = 3
STEPS = 20
TOKENS = 8 * 128


def main():
    ours = ServedExample("mechlens-sae", "e2e_bench", [THREADS])
    kinds = ("local", "e2e", "e2e-ds")
    times = {k: [] for k in kinds}
    for _ in range(ROUNDS):
        for k in kinds:
            times[k].append(ours.run(f"{k} {STEPS}"))
    ours.close()
    step_ms = {k: statistics.median(ms / STEPS for ms in v) for k, v in times.items()}
    ratio = {k: statistics.median(e / l for e, l in zip(times[k], times["local"])) for k in kinds}
    tokens_s = {k: TOKENS / (step_ms[k] / 1e3) for k in kinds}
    machine = f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"
    today = date.today().isoformat()
    write_results("e2e", [
        {"name": f"{k} SAE training step, BabyLlama blocks.2.hook_resid_pre, 2048 latents, 8x128 tokens",
         "value": round(step_ms[k], 1), "unit": "ms/step", "peer": "a local SAE step of the same size (mechlens)",
         "peer_value": round(step_ms["local"], 1), "ratio": round(1 / ratio[k], 3), "date": today, "machine": machine}
        for k in ("e2e", "e2e-ds")
    ])
    lines = [
        "## End-to-end SAEs",
        "",
        f"Measured {today} on {machine}; {THREADS} threads, CPU. {ROUNDS} interleaved rounds of {STEPS} timed steps "
        "after one untimed step; medians. The cost of training an SAE end to end (Braun et al. 2024) against "
        "training the same SAE locally; no peer library trains e2e SAEs on a CPU.",
        "",
        "| SAE training step (2,048 latents, 8 × 128 tokens) | ms/step | tokens/s | × a local step |",
        "| --- | --- | --- | --- |",
    ]
    for k, label in (("local", "local (MSE to the input)"), ("e2e", "e2e (KL through the model)"),
                     ("e2e-ds", "e2e + downstream MSE (3 later points)")):
        lines.append(f"| {label} | {step_ms[k]:.0f} | {tokens_s[k]:,.0f} | {ratio[k]:.2f}× |")
    write_section("End-to-end SAEs", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
