#!/usr/bin/env bash
# Short fixed-seed trainings of each app, for "numbers do not move" checks across a refactor:
# a character LM, a tagger (CRF, character CNN), a classifier (with pretraining off), and the
# character LM under torchrun with 2 processes. Each run's metrics.csv is copied to OUT/NAME.csv
# without its last column (wall-clock seconds), so two builds of the same numbers give
# byte-identical files on the same machine (another CPU's BLAS rounds float32 differently, so the
# comparison is machine-specific and is not part of the test command: run both sides on one machine):
#   scripts/fixed_seed_runs.sh build /tmp/before && ...rebuild... &&
#   scripts/fixed_seed_runs.sh build /tmp/after && diff -r /tmp/before /tmp/after
# usage: scripts/fixed_seed_runs.sh BUILD_DIR OUT_DIR   (about 2 minutes on 2 cores)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
apps="$(cd "$1" && pwd)/apps" out=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"
ds=$root/datasets

head -c 20000 "$ds/tinyshakespeare/train.txt" > "$work/lm_train.txt"
head -c 4000 "$ds/tinyshakespeare/valid.txt" > "$work/lm_valid.txt"
cat > "$work/lm.toml" <<EOF
[data]
level = "char"
train = "lm_train.txt"
valid = "lm_valid.txt"
bptt = 16
[model]
cell = "lstm"
embedding_size = 16
hidden_size = 32
num_layers = 2
dropout = 0.1
[train]
epochs = 3
batch_size = 8
optimizer = "sgd"
learning_rate = 0.5
momentum = 0.9
clip_norm = 0.5
schedule = "step"
gamma = 0.5
seed = 5
EOF

head -n 2500 "$ds/names-binary/names.train.txt" > "$work/ner_train.txt"
head -n 800 "$ds/names-binary/names.dev.txt" > "$work/ner_valid.txt"
sed -e "s|^train = .*|train = \"ner_train.txt\"|" -e "s|^valid = .*|valid = \"ner_valid.txt\"|" \
  -e "s|^epochs = .*|epochs = 3|" -e "s|^max_minutes = .*|max_minutes = 0|" \
  "$root/configs/ner_names_binary.toml" > "$work/ner.toml"

y=$ds/sentiment-labelled-sentences/yelp_labelled.txt
head -n 300 "$y" > "$work/s_train.tsv"
sed -n '700,850p' "$y" > "$work/s_valid.tsv"
cat > "$work/sent.toml" <<EOF
[data]
format = "tsv"
label_last = true
train = "s_train.tsv"
valid = "s_valid.tsv"
[model]
cell = "gru"
embedding_size = 16
hidden_size = 16
bidirectional = true
dropout = 0.2
[train]
epochs = 3
batch_size = 16
learning_rate = 0.01
schedule = "plateau"
seed = 3
EOF

keep() { sed 's/,[^,]*$//' "$work/$1/metrics.csv" > "$out/$1.csv"; }
common=(--threads 1 --quiet --overwrite)
"$apps/rnnkit-lm" train --config "$work/lm.toml" --run-dir "$work/lm" "${common[@]}" && keep lm
"$apps/rnnkit-ner" train --config "$work/ner.toml" --run-dir "$work/ner" "${common[@]}" && keep ner
"$apps/rnnkit-sentiment" train --config "$work/sent.toml" --run-dir "$work/sentiment" "${common[@]}" \
  && keep sentiment
if command -v torchrun > /dev/null; then
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  GLOO_SOCKET_IFNAME=lo torchrun --nnodes 1 --nproc_per_node 2 --rdzv_backend c10d \
    --rdzv_endpoint "127.0.0.1:$port" --redirects 2 --tee 2 --no_python \
    "$apps/rnnkit-lm" train --config "$work/lm.toml" --run-dir "$work/lm_dist" "${common[@]}" \
    > "$work/torchrun.log" 2>&1 || { cat "$work/torchrun.log" >&2; exit 1; }
  keep lm_dist
else
  echo "torchrun is missing: no data-parallel run" >&2
fi
wc -l "$out"/*.csv
