#!/usr/bin/python3
"""The same character-level LM as configs/lm_char_demo.toml, trained with Python PyTorch
(torch.nn.LSTM), for a throughput comparison with `rnnkit-lm train` on the same machine.

Debian's python3-torch (1.13, for /usr/bin/python3) has the same LibTorch inside as rnnkit.

    /usr/bin/python3 bench/lm_throughput.py --steps 200 --threads 2
    build/apps/rnnkit-lm train --config configs/lm_char_demo.toml --max-steps 200 \
        --run-dir /tmp/tp --threads 2 --set train.log_every=50

Both print tokens (characters) per second; docs/benchmarks.md records the ratio.
"""
import argparse
import os
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class CharLM(nn.Module):
    def __init__(self, vocab, emb, hidden, layers):
        super().__init__()
        self.embedding = nn.Embedding(vocab, emb)
        self.rnn = nn.LSTM(emb, hidden, layers)
        self.decoder = nn.Linear(hidden, vocab)

    def forward(self, x, state):
        out, state = self.rnn(self.embedding(x), state)
        return self.decoder(out), state


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--bptt", type=int, default=64)
    p.add_argument("--emb", type=int, default=32)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)

    text = open(os.path.join(ROOT, "datasets/tinyshakespeare/train.txt"), encoding="utf-8").read()
    chars = sorted(set(text))
    stoi = {c: i + 4 for i, c in enumerate(chars)}  # 4 specials, as rnnkit's vocabulary
    ids = torch.tensor([stoi[c] for c in text], dtype=torch.long)
    n = len(ids) // args.batch
    data = ids[: n * args.batch].view(args.batch, n).t().contiguous()

    model = CharLM(len(chars) + 4, args.emb, args.hidden, args.layers)
    opt = torch.optim.Adam(model.parameters(), lr=0.004)
    state = None
    tokens, t0 = 0, None
    for step in range(args.steps):
        if step == 10:  # warm-up excluded
            tokens, t0 = 0, time.perf_counter()
        start = (step * args.bptt) % (n - args.bptt - 1)
        x, y = data[start:start + args.bptt], data[start + 1:start + 1 + args.bptt]
        logits, state = model(x, state)
        state = tuple(s.detach() for s in state)
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        tokens += y.numel()
    dt = time.perf_counter() - t0
    print(f"torch.nn.LSTM char LM: {tokens / dt:.0f} tokens/s "
          f"({args.steps - 10} steps, {args.threads} threads, loss {loss.item():.3f})")


if __name__ == "__main__":
    main()
