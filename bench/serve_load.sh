#!/usr/bin/env bash
# rnnkit-serve under load (docs/serving.md, "Load"): wrk posts one CoNLL-2003 dev sentence per
# request to the tagger and one SST-2 dev sentence to the classifier, at 1, 8 and 64
# connections, with --max-batch 32 and --max-batch 1; then the same classifier in PyTorch eager
# behind FastAPI (bench/serve_baseline.py), one forward pass per request; then tokens per
# second of 1, 8 and 32 concurrent generation streams. Every number comes from this run.
# The models have the recipes' architectures (configs/ner_conll2003.toml,
# configs/sentiment_sst2.toml, configs/lm_char_demo.toml) trained for a few steps: throughput
# does not depend on how well they are trained. The server runs at its defaults (--http-threads
# 64, --max-connections 1024) but --max-batch.
# usage: bench/serve_load.sh BUILD_DIR WORK_DIR [SECONDS]   (needs data/conll2003 and data/sst2)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build=$(cd "$1" && pwd) work=$2 seconds=${3:-30}
apps=$build/apps threads=2
mkdir -p "$work"
data=${RNNKIT_DATA:-$root/data}
for f in "$data/conll2003/eng.testa" "$data/sst2/stsa.binary.dev"; do
  [[ -f $f ]] || { echo "missing $f (scripts/fetch_data.sh)" >&2; exit 2; }
done
command -v wrk > /dev/null || { echo "wrk is missing (apt-get install wrk)" >&2; exit 2; }
python3 -c "import fastapi, uvicorn" 2> /dev/null \
  || { echo "the baseline needs python3-fastapi and python3-uvicorn (apt-get install)" >&2; exit 2; }

# The models.
[[ -f $work/ner/last.pt ]] || "$apps/rnnkit-ner" train --config "$root/configs/ner_conll2003.toml" \
  --run-dir "$work/ner" --max-steps 20 --threads $threads --quiet --overwrite
[[ -f $work/sst2/last.pt ]] || "$apps/rnnkit-sentiment" train --config "$root/configs/sentiment_sst2.toml" \
  --run-dir "$work/sst2" --max-steps 20 --threads $threads --quiet --overwrite
[[ -f $work/char/last.pt ]] || "$apps/rnnkit-lm" train --config "$root/configs/lm_char_demo.toml" \
  --run-dir "$work/char" --max-steps 20 --threads $threads --quiet --overwrite

# The sentences, as JSON strings, one per line.
python3 - "$data" "$work" <<'PY'
import json, sys
data, work = sys.argv[1:]
sents, cur = [], []
for line in open(f"{data}/conll2003/eng.testa", encoding="utf-8"):
    cols = line.split()
    if not cols or cols[0] == "-DOCSTART-":
        if cur: sents.append(" ".join(cur)); cur = []
        continue
    cur.append(cols[0])
open(f"{work}/ner.txt", "w").write("\n".join(json.dumps(s) for s in sents) + "\n")
sst = [l.split(" ", 1)[1].strip() for l in open(f"{data}/sst2/stsa.binary.dev", encoding="utf-8")]
open(f"{work}/sst2.txt", "w").write("\n".join(json.dumps(s) for s in sst) + "\n")
print(f"{len(sents)} CoNLL-2003 dev sentences, {len(sst)} SST-2 dev sentences", file=sys.stderr)
PY

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_up() { for _ in $(seq 600); do curl -sf "http://127.0.0.1:$1/health" > /dev/null && return 0; sleep 0.1; done; return 1; }
load() {  # load PORT PATH SENTENCES CONNECTIONS
  RNNKIT_BENCH_PATH=$2 RNNKIT_BENCH_SENTENCES=$3 wrk -t "$(( $4 < 2 ? 1 : 2 ))" -c "$4" -d "${seconds}s" --timeout 10s \
    -s "$root/bench/serve_post.lua" "http://127.0.0.1:$1" | grep '^RESULT' | sed 's/^RESULT //'
}
rss_mb() { echo $(( $(awk '/VmRSS/ {print $2}' "/proc/$1/status") / 1024 )); }

echo "| server | model | max batch | connections | sentences/s | p50 ms | p90 ms | p99 ms | errors |"
echo "|---|---|---|---|---|---|---|---|---|"
for batch in 32 1; do
  port=$(free_port)
  "$apps/rnnkit-serve" --model "ner=$work/ner/last.pt" --model "sst2=$work/sst2/last.pt" --port "$port" \
    --threads $threads --max-batch $batch --max-delay-ms 5 2> "$work/serve_$batch.log" & pid=$!
  wait_up "$port" || { cat "$work/serve_$batch.log" >&2; exit 1; }
  for model in ner sst2; do
    route=/v1/models/$model/$([[ $model == ner ]] && echo tag || echo classify)
    for c in 1 8 64; do
      r=$(load "$port" "$route" "$work/$model.txt" "$c")
      eval "$(echo "$r" | tr ' ' '\n' | sed 's/^/local_/')"
      echo "| rnnkit-serve | $model | $batch | $c | $local_rps | $local_p50_ms | $local_p90_ms | $local_p99_ms | $((local_non2xx + local_socket_errors)) |"
    done
  done
  echo "rnnkit-serve --max-batch $batch: resident memory $(rss_mb $pid) MB after the runs" >&2
  if [[ $batch == 32 ]]; then
    # Memory stays bounded: resident memory after 100,000 more classify requests against after
    # 10,000 (counted from wrk's totals, in 5-second rounds at 8 connections).
    total=0 rss10=""
    while ((total < 110000)); do
      r=$(RNNKIT_BENCH_PATH=/v1/models/sst2/classify RNNKIT_BENCH_SENTENCES="$work/sst2.txt" \
          wrk -t 2 -c 8 -d 5s -s "$root/bench/serve_post.lua" "http://127.0.0.1:$port" | grep '^RESULT')
      total=$((total + $(echo "$r" | sed 's/.*requests=\([0-9]*\).*/\1/')))
      if [[ -z $rss10 ]] && ((total >= 10000)); then rss10=$(rss_mb $pid) n10=$total; fi
    done
    echo
    echo "resident memory: ${rss10} MB after ${n10} requests, $(rss_mb $pid) MB after ${total}"
    echo
  fi
  kill -TERM $pid; wait $pid || true
done
port=$(free_port)
/usr/bin/python3 "$root/bench/serve_baseline.py" "$data/sst2/stsa.binary.train" "$port" $threads 2> "$work/baseline.log" & pid=$!
wait_up_py() { for _ in $(seq 600); do curl -sf -X POST -H 'Content-Type: application/json' -d '{"texts":["a"]}' "http://127.0.0.1:$1/v1/models/sst2/classify" > /dev/null && return 0; sleep 0.1; done; return 1; }
wait_up_py "$port" || { cat "$work/baseline.log" >&2; exit 1; }
for c in 1 8 64; do
  r=$(load "$port" /v1/models/sst2/classify "$work/sst2.txt" "$c")
  eval "$(echo "$r" | tr ' ' '\n' | sed 's/^/local_/')"
  echo "| FastAPI + PyTorch eager | sst2 | 1 | $c | $local_rps | $local_p50_ms | $local_p90_ms | $local_p99_ms | $((local_non2xx + local_socket_errors)) |"
done
kill $pid; wait $pid 2> /dev/null || true

# Generation: tokens per second of N concurrent streams (each 200 tokens, its own seed).
port=$(free_port)
"$apps/rnnkit-serve" --model "char=$work/char/last.pt" --port "$port" --threads $threads \
  2> "$work/serve_lm.log" & pid=$!
wait_up "$port" || { cat "$work/serve_lm.log" >&2; exit 1; }
echo
echo "| concurrent streams | tokens/s (all streams) |"
echo "|---|---|"
for n in 1 8 32; do
  python3 - "$port" "$n" <<'PY'
import json, sys, threading, time, urllib.request
port, n = sys.argv[1], int(sys.argv[2])
count = [0] * n
def stream(i):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/models/char/generate", method="POST",
        data=json.dumps({"prompt": "ROMEO:", "max_tokens": 200, "seed": i, "stream": True, "stop_at_eos": False}).encode())
    for line in urllib.request.urlopen(req):
        if line.startswith(b"data: ") and b'"text"' in line: count[i] += 1
t0 = time.time()
threads = [threading.Thread(target=stream, args=(i,)) for i in range(n)]
for t in threads: t.start()
for t in threads: t.join()
print(f"| {n} | {sum(count) / (time.time() - t0):.0f} |")
PY
done
kill -TERM $pid; wait $pid || true
