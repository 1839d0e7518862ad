#!/usr/bin/env bash
# rnnkit-serve as a process: usage errors, a model that fails to load stops the start-up naming
# the file, and SIGTERM drains: /health turns 503, a generation in flight finishes, exit 0.
# usage: cli_serve.sh BUILD_DIR SOURCE_DIR WORK_DIR
set -euo pipefail
build=$1 src=$2 work=$3
serve=$build/apps/rnnkit-serve lm=$build/apps/rnnkit-lm
rm -rf "$work" && mkdir -p "$work"
fail() { echo "FAIL: $*" >&2; exit 1; }
expect() {
  local want=$1 pattern=$2; shift 2
  local status=0
  "$@" > "$work/out.txt" 2> "$work/err.txt" || status=$?
  [[ $status -eq $want ]] || fail "$* exited $status, expected $want: $(cat "$work/err.txt")"
  grep -q -- "$pattern" "$work/err.txt" || fail "$*: stderr lacks '$pattern': $(cat "$work/err.txt")"
}

head -c 6000 "$src/datasets/tinyshakespeare/train.txt" > "$work/train.txt"
cat > "$work/lm.toml" <<EOF2
[data]
level = "char"
train = "train.txt"
valid = "train.txt"
bptt = 20
[model]
embedding_size = 8
hidden_size = 16
[train]
epochs = 1
batch_size = 4
EOF2
"$lm" train --config "$work/lm.toml" --run-dir "$work/run" --threads 1 --quiet

expect 2 "give at least one --model" "$serve"
expect 2 "expected NAME=CHECKPOINT" "$serve" --model nothing
expect 2 "may hold letters, digits" "$serve" --model "a/b=$work/run/best.pt"
expect 2 "\-\-max-batch must be in" "$serve" --model "c=$work/run/best.pt" --max-batch 0
expect 1 "nope.pt: cannot open the checkpoint" "$serve" --model "c=$work/nope.pt" --port 0 --threads 1

"$serve" --model "char=$work/run/best.pt" --port 0 --threads 1 --drain-seconds 30 2> "$work/serve.log" & pid=$!
for _ in $(seq 600); do grep -qs "listening on" "$work/serve.log" && break; sleep 0.1; done
port=$(sed -n 's|.*listening on http://127.0.0.1:\([0-9]*\).*|\1|p' "$work/serve.log")
[[ -n $port ]] || { kill $pid; fail "the server did not start: $(cat "$work/serve.log")"; }

# A long streamed generation in flight when SIGTERM comes: it finishes, then the server exits 0.
python3 - "$port" "$pid" > "$work/drain.txt" <<'PY' || fail "drain: $(cat "$work/drain.txt") $(cat "$work/serve.log")"
import json, os, signal, sys, time, urllib.error, urllib.request
port, pid = sys.argv[1], int(sys.argv[2])
base = f"http://127.0.0.1:{port}"
assert urllib.request.urlopen(base + "/health").status == 200
req = urllib.request.Request(base + "/v1/models/char/generate", method="POST",
    data=json.dumps({"prompt": "ROMEO:", "max_tokens": 3000, "stream": True, "stop_at_eos": False}).encode())
stream = urllib.request.urlopen(req)
first = stream.readline()
assert first.startswith(b"data: "), first
os.kill(pid, signal.SIGTERM)
time.sleep(0.3)
events = [first] + [l for l in stream.read().split(b"\n") if l.startswith(b"data: ")]
last = json.loads(events[-1][6:])
assert last.get("done") and last["tokens"] == 3000, last
print("stream finished after SIGTERM:", len(events), "events")
PY
status=0; wait $pid || status=$?
[[ $status -eq 0 ]] || fail "the server exited $status after a drain: $(cat "$work/serve.log")"
grep -q "SIGTERM: draining" "$work/serve.log" || fail "no drain message: $(cat "$work/serve.log")"
echo "cli_serve: ok"
