#!/usr/bin/env python3
"""rnnkit-seq2seq bleu against nltk's corpus_bleu on random corpora (python3-nltk).

    tests/bleu_nltk.py BUILD/apps/rnnkit-seq2seq WORKDIR

nltk's corpus_bleu sums clipped n-gram matches and counts over the corpus as multi-bleu.perl
does, with one difference: a sentence shorter than n counts 1 in the n-gram denominator, not 0.
The corpora here have sentences of at least 4 tokens, where the two agree; precision 0 at some
order gives 0 in multi-bleu and about 1e-77 in nltk (sys.float_info.min ** 0.25): both below
1e-9 of 100.
"""
import json
import random
import subprocess
import sys
import warnings
from pathlib import Path

from nltk.translate.bleu_score import corpus_bleu

warnings.filterwarnings("ignore")  # nltk warns about zero counts, which are cases here


def main() -> int:
    binary, work = sys.argv[1], Path(sys.argv[2])
    work.mkdir(parents=True, exist_ok=True)
    rng = random.Random(7)
    checked = 0
    for case in range(25):
        vocab = [f"w{i}" for i in range(rng.choice([3, 6, 12, 40]))]
        n = rng.randint(1, 30)
        refs, hyps = [], []
        for _ in range(n):
            ref = [rng.choice(vocab) for _ in range(rng.randint(4, 25))]
            # Hypotheses: the reference edited (so that higher n-grams match), or random.
            if rng.random() < 0.7:
                hyp = [t if rng.random() < 0.8 else rng.choice(vocab) for t in ref]
                hyp = hyp[: max(4, len(hyp) - rng.randint(0, 6))] + [rng.choice(vocab)] * rng.randint(0, 3)
            else:
                hyp = [rng.choice(vocab) for _ in range(rng.randint(4, 25))]
            refs.append(ref)
            hyps.append(hyp)
        (work / "hyp.txt").write_text("".join(" ".join(h) + "\n" for h in hyps))
        (work / "ref.txt").write_text("".join(" ".join(r) + "\n" for r in refs))
        out = subprocess.run([binary, "bleu", "--hypothesis", str(work / "hyp.txt"),
                              "--reference", str(work / "ref.txt"), "--json"],
                             check=True, capture_output=True, text=True).stdout
        ours = json.loads(out)
        theirs = 100 * corpus_bleu([[r] for r in refs], hyps)
        if abs(ours["bleu"] - theirs) > 1e-9 * max(1.0, theirs):
            print(f"case {case}: rnnkit {ours['bleu']!r}, nltk {theirs!r}", file=sys.stderr)
            return 1
        if ours["bleu_kind"] != "multi-bleu":
            print(f"case {case}: kind {ours['bleu_kind']}", file=sys.stderr)
            return 1
        checked += 1
    print(f"bleu_nltk: {checked} random corpora agree with nltk's corpus_bleu")
    return 0


if __name__ == "__main__":
    sys.exit(main())
