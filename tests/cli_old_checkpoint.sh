#!/usr/bin/env bash
# A checkpoint written before the framework restructure still evaluates and resumes, to the same
# numbers (tests/fixtures/lm_char_v1/README.md).
# usage: cli_old_checkpoint.sh RNNKIT_LM SOURCE_DIR WORK_DIR
set -euo pipefail
lm=$1 src=$2 work=$3
fx=$src/tests/fixtures/lm_char_v1
source "$src/tests/lib.sh"
rm -rf "$work" && mkdir -p "$work"

# The data where the checkpoint's config says it is.
data=/tmp/rnnkit-fixture-lm-v1
mkdir -p "$data"
head -c 3000 "$src/datasets/tinyshakespeare/train.txt" > "$data/train.txt"
head -c 800 "$src/datasets/tinyshakespeare/valid.txt" > "$data/valid.txt"
cp "$fx/lm.toml" "$data/lm.toml"

# Numbers agree to within one unit of their last printed digit, or 1e-6 relative where more digits
# are printed: the same build gives them exactly, but another CPU's BLAS rounds float32 products
# differently (an Intel Xeon with AVX-512 printed val_ppl 29.438743 against this fixture's 29.438744).
same_numbers() {  # same_numbers EXPECTED ACTUAL
  python3 - "$1" "$2" <<'PY' || fail "$2 differs from $1: $(cat "$2")"
import re, sys
num = re.compile(r"-?\d+\.(\d+)(?:[eE]([-+]?\d+))?")
a, b = (open(p).read() for p in sys.argv[1:])
if num.sub("#", a) != num.sub("#", b): sys.exit(1)
for x, y in zip(num.finditer(a), num.finditer(b)):
    unit = 10.0 ** (-len(x.group(1)) + int(x.group(2) or 0))
    fx, fy = float(x.group(0)), float(y.group(0))
    if abs(fx - fy) > max(1.0001 * unit, 1e-6 * abs(fx)): sys.exit(1)
PY
}

(cd "$data" && "$lm" eval --checkpoint "$fx/last.pt" --file valid.txt --json --threads 1) > "$work/eval.json"
# eval --json has said "autocast" since the fixture was made; the rest is the fixture's.
python3 - "$work/eval.json" "$work/eval_then.json" <<'PY' || fail "eval --json: $(cat "$work/eval.json")"
import json, sys
j = json.load(open(sys.argv[1]))
assert j.pop("autocast") == "fp32", "eval without --precision runs in fp32"
open(sys.argv[2], "w").write(json.dumps(j, separators=(",", ":")) + "\n")
PY
same_numbers "$fx/eval.json" "$work/eval_then.json"

mkdir -p "$work/run"
cp "$fx/last.pt" "$work/run/last.pt"
cp "$fx/run_config.toml" "$work/run/config.toml"
"$lm" train --config "$data/lm.toml" --run-dir "$work/run" --resume --threads 1 --quiet \
  2> "$work/resume.err" || fail "resume: $(cat "$work/resume.err")"
# The fixture's columns: metrics.csv has added precision since, and seconds vary.
python3 - "$work/run/metrics.csv" "$work/metrics.csv" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
assert all(r["precision"] == "fp32" for r in rows), rows
keep = [k for k in rows[0] if k not in ("precision", "seconds")]
with open(sys.argv[2], "w") as f:
    f.write(",".join(keep) + "\n")
    for r in rows: f.write(",".join(r[k] for k in keep) + "\n")
PY
same_numbers "$fx/resumed_metrics.csv" "$work/metrics.csv"
echo "old checkpoint: evaluates and resumes to the same numbers"
