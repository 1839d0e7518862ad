-- wrk script for bench/serve_load.sh: each request posts one sentence of SENTENCES (a file,
-- one sentence per line, JSON-escaped already) to PATH, cycling through the file.
local sentences = {}
local path = os.getenv("RNNKIT_BENCH_PATH")
for line in io.lines(os.getenv("RNNKIT_BENCH_SENTENCES")) do
  sentences[#sentences + 1] = line
end
local i = 0
request = function()
  i = i % #sentences + 1
  return wrk.format("POST", path, {["Content-Type"] = "application/json"},
                    '{"texts": [' .. sentences[i] .. ']}')
end
-- Any answer but 200 is counted, so that a table never hides errors.
local errors = 0
response = function(status)
  if status ~= 200 then errors = errors + 1 end
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT requests=%d seconds=%.3f rps=%.1f p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f non2xx=%d socket_errors=%d\n",
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
