// Tags a sentence with an rnnkit-ner model exported to ONNX, in ONNX Runtime for Node.js:
//   npm install onnxruntime-node
//   node tag.js ner.onnx "We met Anna Smith in Oslo ."
// Prints each entity as TEXT<TAB>TYPE. Reads ner.json (written beside ner.onnx) for the
// vocabularies and the tokenizer; the CRF's best path is a plain Viterbi (docs/export.md).
const ort = require("onnxruntime-node"), fs = require("fs");
const [model, text] = process.argv.slice(2);
const meta = JSON.parse(fs.readFileSync(model.replace(/\.onnx$/, ".json"), "utf8"));
const tk = meta.tokenizer, words = text.split(/\s+/).filter((w) => w);
const ids = (vocab) => new Map(vocab.map((t, i) => [t, i]));
const W = ids(meta.words), C = ids(meta.chars || []);
const key = (w, lower) => {
  if (lower) w = w.toLowerCase();
  return tk.normalize_digits ? w.replace(/\p{Nd}/gu, "0") : w;
};
const wordId = (w) => W.get(key(w, tk.lowercase)) ?? W.get(key(w, true)) ?? tk.unknown_id;
const casing = (w) => {  // the classes of meta.casing_classes
  const n = (re) => (w.match(re) || []).length, all = [...w].length, d = n(/\p{Nd}/gu);
  const up = n(/[\p{Lu}\p{Lt}]/gu), low = n(/\p{Ll}/gu);
  if (all && d === all) return 1;
  if (all && 2 * d > all) return 2;
  if (low && !up) return 3;
  if (up && !low) return 4;
  return /^[\p{Lu}\p{Lt}]/u.test(w) ? 5 : d ? 6 : 7;
};
const chars = words.map((w) => [...w].slice(0, tk.max_word_length).map((c) => C.get(c) ?? tk.unknown_id));
const L = Math.max(...chars.map((c) => c.length)), T = words.length;
const i64 = (a, dims) => new ort.Tensor("int64", BigInt64Array.from(a.map(BigInt)), dims);
const feeds = { words: i64(words.map(wordId), [1, T]), lengths: i64([T], [1]) };
const names = meta.inputs.map((i) => i.name);
if (names.includes("casing")) feeds.casing = i64(words.map(casing), [1, T]);
if (names.includes("chars")) {
  feeds.chars = i64(chars.flatMap((c) => [...c, ...Array(L - c.length).fill(0)]), [1, T, L]);
  feeds.char_lengths = i64(chars.map((c) => c.length), [1, T]);
}
ort.InferenceSession.create(model).then(async (session) => {
  const out = await session.run(feeds), K = meta.tags.length, e = out.emissions.data;
  let path;
  if (meta.decoder === "crf") {  // Viterbi: δ<t>[j] = max_i(δ<t-1>[i] + A[i, j]) + E<t>[j]
    const A = out.transitions.data, back = [];
    let delta = meta.tags.map((_, j) => out.start_transitions.data[j] + e[j]);
    for (let t = 1; t < T; ++t) {
      const best = meta.tags.map((_, j) => delta.reduce((b, d, i) => (d + A[i * K + j] > delta[b] + A[b * K + j] ? i : b), 0));
      delta = best.map((i, j) => delta[i] + A[i * K + j] + e[t * K + j]);
      back.push(best);
    }
    const end = delta.map((d, j) => d + out.end_transitions.data[j]);
    path = [end.indexOf(Math.max(...end))];
    for (let t = T - 2; t >= 0; --t) path.unshift(back[t][path[0]]);
  } else {
    path = words.map((_, t) => { const row = Array.from(e.slice(t * K, (t + 1) * K)); return row.indexOf(Math.max(...row)); });
  }
  // Entities from B-/I-/E-/S- tags (IOB2 or IOBES, meta.tag_scheme).
  let span = null;
  const flush = () => span && console.log(`${span.words.join(" ")}\t${span.type}`);
  path.forEach((k, t) => {
    const [prefix, type] = meta.tags[k] === "O" ? ["O", null] : [meta.tags[k][0], meta.tags[k].slice(2)];
    if (prefix === "O" || prefix === "B" || prefix === "S" || !span || span.type !== type) flush(), span = null;
    if (prefix !== "O") (span = span || { type, words: [] }).words.push(words[t]);
    if (prefix === "E" || prefix === "S") flush(), span = null;
  });
  flush();
});
