// Runs an exported rnnkit model through ONNX Runtime (the npm package onnxruntime-node, found
// through NODE_PATH) for the tests and the benchmark.
//
//   node ort_run.js MODEL REQUEST.json RESULT.json
//
// REQUEST: {"threads": N,
//           "runs": [{"inputs": {NAME: {"type": "int64"|"float32", "dims": [...], "data": [...]}},
//                     "decode": "viterbi"|"argmax" (taggers, optional)}],
//           "greedy": {"prompt": [ids], "steps": N} (language models, optional),
//           "time": {"repeat": N} (optional: the runs are timed, N times over)}
// RESULT: {"runs": [{NAME: {"dims": [...], "data": [...]}, "tags": [[...]] (with decode)}],
//          "greedy": [ids], "seconds": S}
"use strict";
const fs = require("fs");
const ort = require("onnxruntime-node");

// The reference decoders of docs/export.md.
function viterbi(emissions, dims, length, A, start, end) {
  const [, T, K] = dims;  // one sentence: emissions [1 or B, T, K] at row offset 0
  let delta = new Float64Array(K), psi = [];
  for (let j = 0; j < K; ++j) delta[j] = start[j] + emissions[j];
  for (let t = 1; t < length; ++t) {
    const next = new Float64Array(K), back = new Int32Array(K);
    for (let j = 0; j < K; ++j) {
      let best = -Infinity, arg = 0;
      for (let i = 0; i < K; ++i) {
        const s = delta[i] + A[i * K + j];
        if (s > best) best = s, arg = i;
      }
      next[j] = best + emissions[t * K + j];
      back[j] = arg;
    }
    delta = next;
    psi.push(back);
  }
  let best = -Infinity, tag = 0;
  for (let j = 0; j < K; ++j) if (delta[j] + end[j] > best) best = delta[j] + end[j], tag = j;
  const path = [tag];
  for (let t = length - 1; t >= 1; --t) path.unshift(tag = psi[t - 1][tag]);
  return path;
}

function argmax(row) {
  let best = -Infinity, arg = 0;
  row.forEach((v, i) => { if (v > best) best = v, arg = i; });
  return arg;
}

function tensor(spec) {
  if (spec.type === "int64") {
    return new ort.Tensor("int64", BigInt64Array.from(spec.data.map(BigInt)), spec.dims);
  }
  return new ort.Tensor("float32", Float32Array.from(spec.data), spec.dims);
}

function plain(t) {
  // JSON has no infinities (a CRF's forbidden transitions): they travel as strings.
  const data = t.type === "int64" ? Array.from(t.data, Number)
                                  : Array.from(t.data, (v) => (Number.isFinite(v) ? v : String(v)));
  return { dims: t.dims, data };
}

function decodeTags(out, feeds, how) {
  const e = out.emissions, [B, T, K] = e.dims, lengths = Array.from(feeds.lengths.data, Number);
  const tags = [];
  for (let b = 0; b < B; ++b) {
    const rows = e.data.subarray(b * T * K, (b + 1) * T * K);
    if (how === "viterbi") {
      tags.push(viterbi(rows, e.dims, lengths[b], out.transitions.data,
                        out.start_transitions.data, out.end_transitions.data));
    } else {
      const path = [];
      for (let t = 0; t < lengths[b]; ++t) path.push(argmax(rows.subarray(t * K, (t + 1) * K)));
      tags.push(path);
    }
  }
  return tags;
}

// Greedy generation from <eos> + prompt, never drawing <pad> (0), <unk> (1) or <bos> (2), as
// rnnkit-lm sample --greedy draws.
async function greedy(session, spec) {
  const meta = session.inputNames.includes("c0");
  const L = spec.layers, H = spec.hidden;
  let h = new ort.Tensor("float32", new Float32Array(L * H), [L, 1, H]);
  let c = new ort.Tensor("float32", new Float32Array(L * H), [L, 1, H]);
  let feed = spec.prompt, out = [];
  for (let n = 0; n < spec.steps; ++n) {
    const feeds = {
      tokens: new ort.Tensor("int64", BigInt64Array.from(feed.map(BigInt)), [1, feed.length]),
      lengths: new ort.Tensor("int64", BigInt64Array.from([BigInt(feed.length)]), [1]),
      h0: h,
    };
    if (meta) feeds.c0 = c;
    const r = await session.run(feeds);
    const V = r.log_probs.dims[2], last = r.log_probs.data.subarray((feed.length - 1) * V, feed.length * V);
    const scores = Array.from(last);
    scores[0] = scores[1] = scores[2] = -Infinity;
    const next = argmax(scores);
    out.push(next);
    h = r.h_n;
    if (meta) c = r.c_n;
    feed = [next];
  }
  return out;
}

async function main() {
  const [model, requestPath, resultPath] = process.argv.slice(2);
  const request = JSON.parse(fs.readFileSync(requestPath, "utf8"));
  const threads = request.threads || 1;
  const session = await ort.InferenceSession.create(model, {
    intraOpNumThreads: threads, interOpNumThreads: 1, executionMode: "sequential",
  });
  const result = { runs: [] };
  const feedsOf = (run) => Object.fromEntries(
      Object.entries(run.inputs).map(([name, spec]) => [name, tensor(spec)]));
  const runs = (request.runs || []).map(feedsOf);
  for (let i = 0; i < runs.length; ++i) {
    const out = await session.run(runs[i]);
    const r = {};
    if (!request.time) for (const [name, t] of Object.entries(out)) r[name] = plain(t);
    if (request.runs[i].decode) r.tags = decodeTags(out, runs[i], request.runs[i].decode);
    result.runs.push(r);
  }
  if (request.time) {
    const start = process.hrtime.bigint();
    for (let k = 0; k < request.time.repeat; ++k) for (const f of runs) await session.run(f);
    result.seconds = Number(process.hrtime.bigint() - start) / 1e9;
  }
  if (request.greedy) result.greedy = await greedy(session, request.greedy);
  fs.writeFileSync(resultPath, JSON.stringify(result));
}

main().catch((e) => { console.error(`ort_run: ${e.message || e}`); process.exit(1); });
