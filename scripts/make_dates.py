#!/usr/bin/env python3
"""Human-readable dates and their ISO forms, the Sequence Models course's attention exercise.

    scripts/make_dates.py datasets/dates        # writes train.src/.tgt, valid.src/.tgt

A seeded generator: the same seed gives byte-identical files on any machine (no locale, no
clock: month and day names are spelled out here). Each source line is one date written in one of
the formats below, lowercased as people type them; each target line is YYYY-MM-DD.
"""
import random
import sys
from datetime import date, timedelta
from pathlib import Path

MONTHS = ["january", "february", "march", "april", "may", "june", "july", "august",
          "september", "october", "november", "december"]
DAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]


def formats(d: date):
    m, dd, yy = MONTHS[d.month - 1], d.day, d.year
    wd = DAYS[d.weekday()]
    return [
        f"{wd} {dd} {m} {yy}",
        f"{dd} {m} {yy}",
        f"{dd} {m[:3]} {yy}",
        f"{m} {dd}, {yy}",
        f"{m[:3]} {dd} {yy}",
        f"{dd:02d}.{d.month:02d}.{yy % 100:02d}",
        f"{dd}/{d.month}/{yy}",
        f"{dd:02d}/{d.month:02d}/{yy}",
        f"{wd[:3]} {m[:3]} {dd} {yy}",
        f"{wd}, {m} {dd}, {yy}",
        f"{dd} {m[:3]}. {yy}",
        f"{yy} {m} {dd}",
    ]


def make(n: int, rng: random.Random):
    start, span = date(1950, 1, 1), (date(2049, 12, 31) - date(1950, 1, 1)).days
    out = []
    for _ in range(n):
        d = start + timedelta(days=rng.randrange(span + 1))
        out.append((rng.choice(formats(d)), d.isoformat()))
    return out


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    folder = Path(sys.argv[1])
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(20261203)
    for split, n in (("train", 20000), ("valid", 1000)):
        pairs = make(n, rng)
        (folder / f"{split}.src").write_text("".join(s + "\n" for s, _ in pairs))
        (folder / f"{split}.tgt").write_text("".join(t + "\n" for _, t in pairs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
