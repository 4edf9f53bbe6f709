#!/usr/bin/env python3
"""Trains reproduction 02's induction recipe in TransformerLens (PyTorch) instead of mechlens,
and prints which heads formed: the cross-check behind the notebook's sentence "it is not our
implementation".

The recipe is mechlens_toys::train_induction's: a two-layer attention-only model (d_model 64,
4 heads of 16, vocabulary and context 64, no LayerNorm, learned positions), TransformerLens'
initialisation with the token and position embeddings scaled ×10 to N(0, 1), AdamW at a
constant 2e-3, batch 32, random tokens with one segment of random length 6-24 repeated at a
random offset (the same generator, re-drawn here with numpy), scored on every token or only
on the repeated ones (OBJECTIVE: every-token, the default, or repeated-tokens, as
mechlens_toys::InductionObjective).

Measured (2026-12-03, 2 threads, ~95 s each): weight decay 0 and 0.01 both give no
previous-token head in layer 0 (≤ 0.03) and four induction heads in layer 1 (stripe
0.58-0.64), as mechlens' own run does.

Scored on the repeated tokens (2026-12-05, seed 0, weight decay 0, ~80 s): previous-token 0.99
(head 1) in layer 0, four induction heads in layer 1 (stripe 0.84-0.88), loss on the repeated
tokens of the 4,096-row probe 0.122 (mechlens' own run: 0.121): the paper's circuit, as
mechlens' own run forms. (The earlier 32-row probe read 0.094.)

Usage: .venv/bin/python scripts/induction_in_transformer_lens.py [WEIGHT_DECAY] [SEED] [STEPS]
       [OBJECTIVE]
"""

import sys

import numpy as np
import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

# The data and its probe are the plain PyTorch cross-check's (a script's own folder is on the
# import path).
from induction_in_plain_pytorch import CONTEXT, PROBE_ROWS, VOCAB, batch


def main() -> None:
    weight_decay = float(sys.argv[1]) if len(sys.argv) > 1 else 0.0
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    steps = int(sys.argv[3]) if len(sys.argv) > 3 else 4000
    objective = sys.argv[4] if len(sys.argv) > 4 else "every-token"
    if objective not in ("every-token", "repeated-tokens"):
        sys.exit(f"OBJECTIVE must be every-token or repeated-tokens, got {objective!r}")
    torch.set_num_threads(2)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    cfg = HookedTransformerConfig(
        n_layers=2, d_model=64, n_heads=4, d_head=16, d_vocab=VOCAB, n_ctx=CONTEXT,
        attn_only=True, normalization_type=None, act_fn="relu",
    )
    model = HookedTransformer(cfg)
    with torch.no_grad():
        model.embed.W_E.mul_(10)
        model.pos_embed.W_pos.mul_(10)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=weight_decay)
    for step in range(steps):
        tokens, repeats = batch(rng)
        targets = tokens[:, 1:]
        if objective == "repeated-tokens":
            # ignore_index skips every position whose next token is not a repeat.
            targets = targets.masked_fill(~repeats[:, :-1], -100)
        logits = model(tokens)[:, :-1]
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, VOCAB), targets.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 1000 == 0 or step == steps - 1:
            print(f"step {step}: loss {loss.item():.3f}", flush=True)
    # Scores on 8 repeated random sequences of 30 tokens: previous-token (the diagonal below
    # the main one) and the induction stripe (29 back).
    half = torch.randint(0, VOCAB, (8, 30))
    _, cache = model.run_with_cache(torch.cat([half, half], 1))
    for layer in range(2):
        pattern = cache["pattern", layer]
        previous = pattern.diagonal(-1, -2, -1).mean((0, 2))
        stripe = pattern.diagonal(-29, -2, -1).mean((0, 2))
        print(f"layer {layer}: previous-token {previous.numpy().round(2)}, induction stripe {stripe.numpy().round(2)}")
    probe, probe_mask = batch(np.random.default_rng(999), PROBE_ROWS)
    with torch.no_grad():
        logp = model(probe)[:, :-1].log_softmax(-1)
    picked = logp.gather(-1, probe[:, 1:, None])[..., 0]
    print(f"RESULT {objective}: loss on the repeated tokens of {PROBE_ROWS} rows "
          f"{-picked[probe_mask[:, :-1]].mean().item():.3f}")


if __name__ == "__main__":
    main()
