#!/usr/bin/python3
"""The model of configs/seq2seq_multi30k_de_en.toml in Python PyTorch, for a training-throughput
comparison with `rnnkit-seq2seq train` on the same machine (bench/seq2seq_speed.sh runs both).

A bidirectional torch.nn.GRU encoder, a bridge (tanh of a linear map of both final states), a
torch.nn.GRUCell decoder stepped with the same additive (Bahdanau) attention, the attentional
state tanh(W_c [c; s]), dropout and the output layer; label-smoothed cross-entropy, Adam, global
norm clipping. The data are the recipe's: the same files, vocabularies of the tokens seen at least
twice, batches of 64 pairs of similar source lengths. torch.nn.GRU is the reset-after GRU, the
recipe's `gru` the course's (reset before the product): the same products, in another order.

    /usr/bin/python3 bench/seq2seq_throughput.py --steps 120 --threads 2

Prints target tokens (with <eos>) per second, as rnnkit's progress line counts them.
"""
import argparse
import collections
import os
import random
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAD, UNK, BOS, EOS = 0, 1, 2, 3


def vocab(lines, min_count):
    counts = collections.Counter(w for line in lines for w in line)
    words = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
    return {w: i + 4 for i, w in enumerate(words)}


class Seq2Seq(nn.Module):
    def __init__(self, vs, vt, emb, hidden, dropout, emb_dropout):
        super().__init__()
        self.src_emb = nn.Embedding(vs, emb, padding_idx=PAD)
        self.tgt_emb = nn.Embedding(vt, emb, padding_idx=PAD)
        self.encoder = nn.GRU(emb, hidden, bidirectional=True)
        self.bridge = nn.Linear(2 * hidden, hidden)
        self.W_h = nn.Linear(2 * hidden, hidden)
        self.W_s = nn.Linear(hidden, hidden, bias=False)
        self.v = nn.Linear(hidden, 1, bias=False)
        self.cell = nn.GRUCell(emb + 2 * hidden, hidden)
        self.W_c = nn.Linear(3 * hidden, hidden, bias=False)
        self.out = nn.Linear(hidden, vt)
        self.drop, self.emb_drop = nn.Dropout(dropout), nn.Dropout(emb_dropout)

    def forward(self, src, lengths, tgt_in):
        x = self.emb_drop(self.src_emb(src))  # [S, B, E]
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths, enforce_sorted=False)
        h, final = self.encoder(packed)
        h, _ = nn.utils.rnn.pad_packed_sequence(h)  # [S, B, 2H]
        s = torch.tanh(self.bridge(torch.cat([final[0], final[1]], -1)))  # [B, H]
        mask = (torch.arange(h.size(0))[:, None] < lengths[None, :]).t()  # [B, S]
        values = h.transpose(0, 1)  # [B, S, 2H]
        keys = self.W_h(values)  # [B, S, H], once per sentence
        y = self.emb_drop(self.tgt_emb(tgt_in))  # [T, B, E]
        outs = []
        for t in range(y.size(0)):
            e = self.v(torch.tanh(keys + self.W_s(s)[:, None, :])).squeeze(-1)  # [B, S]
            a = torch.softmax(e.masked_fill(~mask, float("-inf")), -1)
            c = torch.bmm(a[:, None, :], values).squeeze(1)  # [B, 2H]
            s = self.cell(torch.cat([y[t], c], -1), s)
            outs.append(torch.tanh(self.W_c(torch.cat([c, s], -1))))
        return self.out(self.drop(torch.stack(outs)))  # [T, B, V]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=120)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--data", default=os.environ.get("RNNKIT_DATA", os.path.join(ROOT, "data")))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    tok = os.path.join(args.data, "multi30k/tok")
    src = [l.split() for l in open(os.path.join(tok, "train.lc.norm.tok.de"), encoding="utf-8")]
    tgt = [l.split() for l in open(os.path.join(tok, "train.lc.norm.tok.en"), encoding="utf-8")]
    sv, tv = vocab(src, 2), vocab(tgt, 2)
    src_ids = [[sv.get(w, UNK) for w in s] + [EOS] for s in src]  # rnnkit appends <eos> too
    tgt_ids = [[tv.get(w, UNK) for w in t] for t in tgt]

    # Batches of similar lengths: shuffled, then sorted by source length within pools of 100.
    order = list(range(len(src_ids)))
    random.Random(1).shuffle(order)
    batches = []
    for i in range(0, len(order), 100 * args.batch):
        pool = sorted(order[i:i + 100 * args.batch], key=lambda j: len(src_ids[j]))
        batches += [pool[k:k + args.batch] for k in range(0, len(pool), args.batch)]
    random.Random(2).shuffle(batches)

    model = Seq2Seq(len(sv) + 4, len(tv) + 4, 256, 256, 0.3, 0.2)
    opt = torch.optim.Adam(model.parameters(), lr=0.002)
    tokens, t0 = 0, None
    for step in range(args.warmup + args.steps):
        idx = batches[step % len(batches)]
        S = max(len(src_ids[j]) for j in idx)
        T = max(len(tgt_ids[j]) for j in idx) + 1
        s = torch.zeros(S, len(idx), dtype=torch.long)
        ti = torch.zeros(T, len(idx), dtype=torch.long)
        to = torch.zeros(T, len(idx), dtype=torch.long)
        lengths = torch.tensor([len(src_ids[j]) for j in idx])
        n = 0
        for b, j in enumerate(idx):
            s[: len(src_ids[j]), b] = torch.tensor(src_ids[j])
            y = tgt_ids[j]
            ti[0, b] = BOS
            ti[1 : len(y) + 1, b] = torch.tensor(y, dtype=torch.long)
            to[: len(y), b] = torch.tensor(y, dtype=torch.long)
            to[len(y), b] = EOS
            n += len(y) + 1
        if step == args.warmup:
            tokens, t0 = 0, time.perf_counter()
        logits = model(s, lengths, ti)
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), to.reshape(-1),
                               ignore_index=PAD, label_smoothing=0.1)
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        tokens += n
    dt = time.perf_counter() - t0
    print(f"torch.nn seq2seq: {args.steps} steps, {tokens / dt:.0f} tok/s "
          f"({dt / args.steps * 1000:.1f} ms/step, loss {loss.item():.3f}, threads {args.threads})")


if __name__ == "__main__":
    main()
