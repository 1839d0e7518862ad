"""The cost of calling the trained apps from Python: sentences per second of Tagger.tag and
Classifier.classify at batch 1 and 32 against the CLI's `predict --batch-size` on the same
sentences, with the same threads. The models are each recipe's own sizes (ner_wikigold,
sentiment_uci) trained for a few steps: speed does not depend on how well they are trained.

The CLI's rate leaves out its start and the model's load: it is the extra sentences over the
extra seconds between a run on one batch's worth and a run on all of them (each the median of
--repeats). Python's is the same sentences through one loaded object, timed around the calls.
usage: PYTHONPATH=BUILD/python python3 bench/python_apps.py --apps BUILD/apps [--threads 2]"""
import argparse
import os
import statistics
import subprocess
import tempfile
import time

import torch

import rnnkit

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(HERE)


def wikigold_sentences(n):
    """The dev split's sentences as raw text (tokens joined by spaces)."""
    out, words = [], []
    with open(os.path.join(SOURCE, "datasets", "wikigold", "wikigold.dev.conll"),
              encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("-DOCSTART-"):
                if words:
                    out.append(" ".join(words))
                    words = []
                continue
            words.append(line.split()[0])
    if words:
        out.append(" ".join(words))
    return (out * (n // max(len(out), 1) + 1))[:n]


def uci_sentences(n):
    path = os.path.join(SOURCE, "datasets", "sentiment-labelled-sentences",
                        "amazon_cells_labelled.txt")
    with open(path, encoding="utf-8") as f:
        out = [line.rsplit("\t", 1)[0] for line in f if line.strip()]
    return (out * (n // len(out) + 1))[:n]


def cli_seconds(cmd, path, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run(cmd + ["--file", path], check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def cli_rate(cmd, texts, batch, work, repeats):
    small, full = os.path.join(work, "small.txt"), os.path.join(work, "full.txt")
    with open(small, "w", encoding="utf-8") as f:
        f.write("\n".join(texts[:batch]) + "\n")
    with open(full, "w", encoding="utf-8") as f:
        f.write("\n".join(texts) + "\n")
    cmd = cmd + ["--batch-size", str(batch)]
    extra = cli_seconds(cmd, full, repeats) - cli_seconds(cmd, small, repeats)
    return (len(texts) - batch) / extra


def python_rate(call, texts, batch, repeats):
    call(texts[:batch])  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for i in range(0, len(texts), batch):
            call(texts[i:i + batch])
        times.append(time.perf_counter() - t0)
    return len(texts) / statistics.median(times)


def train(apps, app, config, run, overrides, threads):
    cmd = [os.path.join(apps, "rnnkit-" + app), "train", "--config",
           os.path.join(SOURCE, "configs", config), "--run-dir", run, "--threads", str(threads),
           "--max-steps", "5", "--quiet"]
    for o in overrides:
        cmd += ["--set", o]
    subprocess.run(cmd, check=True)
    return os.path.join(run, "last.pt")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--apps", required=True, help="the folder of the rnnkit-* executables")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sentences", type=int, default=1024, help="for tag")
    # Classifying is about ten times faster: more sentences, so that the CLI's extra seconds are
    # well above its start's noise.
    ap.add_argument("--classify-sentences", type=int, default=8192)
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    with tempfile.TemporaryDirectory() as work:
        tagger = train(a.apps, "ner", "ner_wikigold.toml", os.path.join(work, "ner"), [],
                       a.threads)
        clf = train(a.apps, "sentiment", "sentiment_uci.toml", os.path.join(work, "sent"), [],
                    a.threads)
        cases = [("tag", "ner", tagger, rnnkit.load(tagger).tag,
                  wikigold_sentences(a.sentences)),
                 ("classify", "sentiment", clf, rnnkit.load(clf).classify,
                  uci_sentences(a.classify_sentences))]
        print(f"{a.sentences} sentences tagged, {a.classify_sentences} classified, {a.threads} "
              f"threads, median of {a.repeats}")
        print("| call | batch | CLI predict (sent/s) | Python (sent/s) | Python / CLI |")
        print("|---|---|---|---|---|")
        for name, app, ckpt, call, texts in cases:
            cmd = [os.path.join(a.apps, "rnnkit-" + app), "predict", "--checkpoint", ckpt,
                   "--json", "--threads", str(a.threads)]
            for batch in (1, 32):
                c = cli_rate(cmd, texts, batch, work, a.repeats)
                p = python_rate(call, texts, batch, a.repeats)
                print(f"| {name} | {batch} | {c:,.0f} | {p:,.0f} | {p / c:.2f} |", flush=True)


if __name__ == "__main__":
    main()
