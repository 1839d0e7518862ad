#!/usr/bin/env bash
# The page in a real browser: four tiny models trained here (a character LM, a GRU classifier on
# labelled sentences, a tagger on toy CoNLL data, a dates translator), rnnkit-serve over them, and
# tests/browser_serve.py driving headless Chromium against it (screenshots in WORK_DIR).
# usage: cli_serve_page.sh BUILD_DIR SOURCE_DIR WORK_DIR
set -euo pipefail
build=$1 src=$2 work=$3
apps=$build/apps
rm -rf "$work" && mkdir -p "$work"
source "$src/tests/lib.sh"
for need in /usr/bin/chromium /usr/bin/chromedriver; do
  [[ -x $need ]] || fail "$need is missing (scripts/setup.sh installs chromium and chromium-driver)"
done
/usr/bin/python3 -c 'import selenium' 2> /dev/null || fail "python3-selenium is missing (scripts/setup.sh installs it)"

head -c 8000 "$src/datasets/tinyshakespeare/train.txt" > "$work/lm.txt"
printf '[data]\nlevel = "char"\ntrain = "lm.txt"\nvalid = "lm.txt"\nbptt = 20\n[model]\nembedding_size = 8\nhidden_size = 32\n[train]\nepochs = 1\nbatch_size = 4\n' > "$work/lm.toml"
"$apps/rnnkit-lm" train --config "$work/lm.toml" --run-dir "$work/lm" --threads 1 --quiet
python3 - "$work" <<'PY'
import sys
work = sys.argv[1]
good = ["great food", "lovely staff", "really good", "so tasty", "nice place"]
bad = ["awful food", "rude staff", "really bad", "so bland", "dirty place"]
with open(f"{work}/s.tsv", "w") as f:
    for i in range(40):
        f.write(f"{good[i % 5]} {i % 3}\t1\n{bad[i % 5]} {i % 3}\t0\n")
people = ["Anna", "Boris", "Chen", "Dara", "Emil", "Fatou", "Goran", "Hiro"]
places = ["Oslo", "Lima", "Accra", "Hanoi", "Quito", "Perth"]
with open(f"{work}/n.conll", "w") as f:
    for i in range(40):
        a, b, c = (i * 7) % 8, (i * 3) % 6, (i * 5 + 1) % 8
        f.write(f"we O\nmet O\n{people[a]} B-PER\nSmith I-PER\nin O\n{places[b]} B-LOC\nwith O\n{people[c]} B-PER\n. O\n\n")
PY
printf '[data]\nformat = "tsv"\nlabel_last = true\ntrain = "s.tsv"\nvalid = "s.tsv"\n[model]\ncell = "gru"\nembedding_size = 8\nhidden_size = 8\ndropout = 0.0\n[train]\nepochs = 3\nbatch_size = 8\nlearning_rate = 0.02\n' > "$work/s.toml"
"$apps/rnnkit-sentiment" train --config "$work/s.toml" --run-dir "$work/s" --threads 1 --quiet
printf '[data]\ntrain = "n.conll"\nvalid = "n.conll"\n[model]\nword_embedding_size = 8\nchar_embedding_size = 4\nchar_hidden_size = 4\ncasing_size = 2\nhidden_size = 8\ndropout = 0.0\n[train]\nepochs = 4\nbatch_size = 8\nlearning_rate = 0.02\n' > "$work/n.toml"
"$apps/rnnkit-ner" train --config "$work/n.toml" --run-dir "$work/n" --threads 1 --quiet
# A tiny dates translator, for the attention heatmap (its translations need not be right).
head -400 "$src/datasets/dates/train.src" > "$work/d.src"
head -400 "$src/datasets/dates/train.tgt" > "$work/d.tgt"
"$apps/rnnkit-seq2seq" train --config "$src/configs/seq2seq_dates.toml" --run-dir "$work/d" --threads 1 \
  --set data.train_source="$work/d.src" --set data.train_target="$work/d.tgt" \
  --set data.valid_source="$work/d.src" --set data.valid_target="$work/d.tgt" \
  --set model.hidden_size=16 --set model.embedding_size=8 --set train.epochs=1 \
  --set train.max_minutes=0 --quiet

"$apps/rnnkit-serve" --model "char=$work/lm/best.pt" --model "sst=$work/s/best.pt" --model "ner=$work/n/best.pt" --model "dates=$work/d/best.pt" \
  --port 0 --threads 1 2> "$work/serve.log" & pid=$!
trap 'kill $pid 2> /dev/null || true' EXIT
port=$(serve_port "$work/serve.log" "$pid")
/usr/bin/python3 "$src/tests/browser_serve.py" "http://127.0.0.1:$port" "$work"
kill $pid; wait $pid 2> /dev/null || true
# With --api-key-file: the page asks for the key and sends it with every call.
printf 'page-test-key-1234\n' > "$work/key.txt"
chmod 600 "$work/key.txt"
"$apps/rnnkit-serve" --model "char=$work/lm/best.pt" --model "sst=$work/s/best.pt" --model "ner=$work/n/best.pt" --model "dates=$work/d/best.pt" \
  --port 0 --threads 1 --api-key-file "$work/key.txt" 2> "$work/serve_key.log" & pid=$!
port=$(serve_port "$work/serve_key.log" "$pid")
mkdir -p "$work/key"
/usr/bin/python3 "$src/tests/browser_serve.py" "http://127.0.0.1:$port" "$work/key" page-test-key-1234
