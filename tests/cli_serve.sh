#!/usr/bin/env bash
# rnnkit-serve as a process: usage errors, a model that fails to load stops the start-up naming
# the file, and SIGTERM drains: the listener closes, a generation in flight finishes, exit 0;
# requests accepted but still waiting for a worker are answered too; when --drain-seconds runs
# out the rest get 503 and it exits 143; a second signal exits at once; SIGUSR1/2 are ignored.
# usage: cli_serve.sh BUILD_DIR SOURCE_DIR WORK_DIR
set -euo pipefail
build=$1 src=$2 work=$3
serve=$build/apps/rnnkit-serve lm=$build/apps/rnnkit-lm
rm -rf "$work" && mkdir -p "$work"
source "$src/tests/lib.sh"

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
# cxxopts splits at commas: an ensemble's second checkpoint once arrived as a --model of its own
# ("expected NAME=CHECKPOINT"); now the spec reaches the loader whole.
expect 1 "an ensemble of several checkpoints is for sentiment models only" \
  "$serve" --model "c=$work/run/best.pt,$work/run/best.pt" --port 0 --threads 1

"$serve" --model "char=$work/run/best.pt" --port 0 --threads 1 --drain-seconds 30 2> "$work/serve.log" & pid=$!
port=$(serve_port "$work/serve.log" "$pid")

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
# A new connection while draining: refused (the listener is closed), or a 503 "draining" if it
# raced the close; never served as if nothing happened.
try:
    code = urllib.request.urlopen(base + "/health", timeout=5).status
except urllib.error.HTTPError as e:
    code = e.code
except (ConnectionError, urllib.error.URLError):
    code = "refused"
assert code in (503, "refused"), code
PY
status=0; wait $pid || status=$?
[[ $status -eq 0 ]] || fail "the server exited $status after a drain: $(cat "$work/serve.log")"
grep -q "SIGTERM: draining" "$work/serve.log" || fail "no drain message: $(cat "$work/serve.log")"
# 20 requests on 2 HTTP threads: 18 wait for a worker when SIGTERM comes. Each is answered
# (cpp-httplib's own loop dropped the waiting ones with an empty reply).
"$serve" --model "char=$work/run/best.pt" --port 0 --threads 1 --http-threads 2 --drain-seconds 60 \
  2> "$work/serve2.log" & pid=$!
port=$(serve_port "$work/serve2.log" "$pid")
/usr/bin/python3 "$src/tests/serve_drain.py" "$port" "$pid" 20 400 200 > "$work/queued.txt" \
  || fail "queued: $(cat "$work/queued.txt") $(tail -3 "$work/serve2.log")"
status=0; wait $pid || status=$?
[[ $status -eq 0 ]] || fail "the server exited $status after draining 20 requests: $(tail -3 "$work/serve2.log")"
# When --drain-seconds runs out, the requests still waiting are answered 503 (they were dropped
# with the process) and the server exits 143. 12 long generations on 2 HTTP threads, 1 s drain.
"$serve" --model "char=$work/run/best.pt" --port 0 --threads 1 --http-threads 2 --drain-seconds 1 \
  2> "$work/serve4.log" & pid=$!
port=$(serve_port "$work/serve4.log" "$pid")
/usr/bin/python3 "$src/tests/serve_drain.py" "$port" "$pid" 12 4096 200,503 --need 503 --within 10 \
  > "$work/expired.txt" || fail "expired drain: $(cat "$work/expired.txt") $(tail -3 "$work/serve4.log")"
status=0; wait $pid || status=$?
[[ $status -eq 143 ]] || fail "an expired drain exited $status, expected 143: $(tail -3 "$work/serve4.log")"
grep -q "answering them 503" "$work/serve4.log" || fail "expired drain: $(tail -3 "$work/serve4.log")"

# A second signal during a drain exits at once, with the signal's status.
"$serve" --model "char=$work/run/best.pt" --port 0 --threads 1 --drain-seconds 60 \
  2> "$work/serve5.log" & pid=$!
port=$(serve_port "$work/serve5.log" "$pid")
curl -s -N -X POST "http://127.0.0.1:$port/v1/models/char/generate" \
  -d '{"max_tokens": 4096, "stream": true, "stop_at_eos": false}' > "$work/stream5.txt" & curl_pid=$!
for _ in $(seq 100); do [[ -s $work/stream5.txt ]] && break; sleep 0.05; done
kill -TERM $pid
for _ in $(seq 100); do grep -qs "SIGTERM: draining" "$work/serve5.log" && break; sleep 0.05; done
start=$(date +%s%N)
kill -TERM $pid
status=0; wait $pid || status=$?
took_ms=$((($(date +%s%N) - start) / 1000000))
kill $curl_pid 2> /dev/null || true
wait $curl_pid 2> /dev/null || true
[[ $status -eq 143 ]] || fail "a second SIGTERM: exit $status, expected 143"
((took_ms < 3000)) || fail "a second SIGTERM took $took_ms ms to end the process"

# SIGUSR1 and SIGUSR2 are ignored; SIGHUP drains as SIGTERM does (all once killed the server).
"$serve" --model "char=$work/run/best.pt" --port 0 --threads 1 2> "$work/serve3.log" & pid=$!
port=$(serve_port "$work/serve3.log" "$pid")
kill -USR1 $pid
kill -USR2 $pid
sleep 0.3
python3 -c "import urllib.request, sys; assert urllib.request.urlopen(f'http://127.0.0.1:{sys.argv[1]}/health').status == 200" "$port" ||
  { kill $pid; fail "SIGUSR1 or SIGUSR2 stopped the server"; }
kill -HUP $pid
status=0; wait $pid || status=$?
[[ $status -eq 0 ]] || fail "SIGHUP: exit $status, expected a drain and 0: $(tail -2 "$work/serve3.log")"
grep -q "SIGHUP: draining" "$work/serve3.log" || fail "SIGHUP: $(tail -2 "$work/serve3.log")"
echo "cli_serve: ok"
