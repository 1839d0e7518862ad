#!/usr/bin/env python3
"""Splits a CoNLL file into train and dev by whole documents, with a fixed seed.

Documents are separated by -DOCSTART- lines (text before the first one is document 0).
The split is written to SPLIT.txt (one line per document: index, first line, split) so that it
can be checked and reproduced without this script.

  scripts/split_conll.py IN OUT_DIR --dev-fraction 0.2 --seed 1
"""
import argparse
import os
import random


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("input")
    ap.add_argument("out_dir")
    ap.add_argument("--dev-fraction", type=float, default=0.2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--prefix", default="wikigold")
    a = ap.parse_args()

    docs, current, first_line = [], [], []
    with open(a.input, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.startswith("-DOCSTART-") and current:
                docs.append(current)
                current = []
            if not current:
                first_line.append(n)
            current.append(line)
    if current:
        docs.append(current)

    order = list(range(len(docs)))
    random.Random(a.seed).shuffle(order)
    dev = set(order[: round(a.dev_fraction * len(docs))])
    os.makedirs(a.out_dir, exist_ok=True)
    with open(os.path.join(a.out_dir, f"{a.prefix}.train.conll"), "w", encoding="utf-8") as tr, \
         open(os.path.join(a.out_dir, f"{a.prefix}.dev.conll"), "w", encoding="utf-8") as dv, \
         open(os.path.join(a.out_dir, "split.txt"), "w", encoding="utf-8") as sp:
        sp.write(f"# {os.path.basename(a.input)} split by document: seed {a.seed}, "
                 f"dev fraction {a.dev_fraction}, {len(docs)} documents, {len(dev)} in dev\n")
        sp.write("# document  first_line  split\n")
        for i, d in enumerate(docs):
            out = dv if i in dev else tr
            if d and not d[-1].strip() == "":
                d = d + ["\n"]
            out.writelines(d)
            sp.write(f"{i} {first_line[i]} {'dev' if i in dev else 'train'}\n")


if __name__ == "__main__":
    main()
