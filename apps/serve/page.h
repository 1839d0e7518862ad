#pragma once
// The page rnnkit-serve answers GET / with: one HTML file built into the binary (no CDN, no
// front-end build). A model selector filled from /v1/models and a text box; a tagger's entities
// highlighted inline (one colour per type, with the type and confidence, as displaCy shows
// them), a classifier's classes as bars, a language model's tokens as they stream.
namespace rnnkit::serve {

inline const char* kPage = R"PAGE(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>rnnkit-serve</title>
<style>
  body { font: 16px/1.5 system-ui, sans-serif; max-width: 52rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
  h1 { font-size: 1.4rem; margin-bottom: .2rem; }
  #attention { border-collapse: collapse; font-size: .8rem; margin-top: .5rem; }
  #attention th { font-weight: 400; padding: 0 .3rem; }
  #attention td { width: 1.4rem; height: 1.4rem; border: 1px solid #eee; }
  .sub { color: #666; margin-top: 0; }
  label { font-weight: 600; margin-right: .5rem; }
  select, input, textarea, button { font: inherit; }
  textarea { width: 100%; box-sizing: border-box; min-height: 5rem; padding: .5rem; }
  .row { margin: .8rem 0; display: flex; gap: 1rem; align-items: center; flex-wrap: wrap; }
  button { padding: .4rem 1.2rem; border-radius: .3rem; border: 1px solid #446; background: #eef; cursor: pointer; }
  #out { margin-top: 1.2rem; min-height: 3rem; }
  .tagged { line-height: 2.6; font-size: 1.1rem; }
  mark.entity { padding: .2em .35em; margin: 0 .15em; border-radius: .35em; }
  mark.entity .type { font-size: .7em; font-weight: 700; margin-left: .4em; text-transform: uppercase; }
  mark.entity .conf { font-size: .65em; margin-left: .3em; color: #333; }
  .bar-row { display: flex; align-items: center; gap: .6rem; margin: .3rem 0; }
  .bar-label { width: 7rem; text-align: right; font-weight: 600; }
  .bar-track { flex: 1; background: #eee; border-radius: .3rem; height: 1.4rem; }
  .bar { background: #5a7bd8; height: 100%; border-radius: .3rem; }
  .bar-value { width: 4rem; font-variant-numeric: tabular-nums; }
  #generated { white-space: pre-wrap; font-family: ui-monospace, monospace; background: #f7f7f7; padding: .8rem; border-radius: .3rem; }
  #generated .prompt { color: #777; }
  .error { color: #b00; }
  .lm-only { display: none; }
</style>
</head>
<body>
<h1>rnnkit-serve</h1>
<p class="sub" id="card">loading the models&hellip;</p>
<div class="row">
  <label for="model">Model</label><select id="model"></select>
  <span class="lm-only"><label for="temperature">Temperature</label><input id="temperature" type="number" value="0.8" min="0" max="5" step="0.1" style="width:5rem"></span>
  <span class="lm-only"><label for="topk">Top-k</label><input id="topk" type="number" value="0" min="0" style="width:5rem"></span>
  <span class="lm-only"><label for="maxtokens">Tokens</label><input id="maxtokens" type="number" value="300" min="1" style="width:6rem"></span>
</div>
<textarea id="text" placeholder="Type a sentence">Harry Potter and Hermione Granger met in London.</textarea>
<div class="row" id="keyrow" style="display:none"><label for="apikey">API key</label><input id="apikey" type="password" autocomplete="off" style="width:18rem"><button id="usekey">Use</button><span class="sub">kept in this page only, sent as <code>Authorization: Bearer</code></span></div>
<div class="row"><button id="run">Run</button><span id="status"></span></div>
<div id="out"></div>
<script>
"use strict";
const palette = ["#7aecec", "#bfeeb7", "#feca74", "#ff9561", "#aa9cfc", "#c887fb", "#9cc9cc", "#ffeb80", "#e4e7d2", "#f0d0ff"];
const colours = {};
let models = [];
let apiKey = "";  // for a server with --api-key-file: in this page's memory only, never stored
const $ = (id) => document.getElementById(id);
function headers(json) {
  const h = json ? { "Content-Type": "application/json" } : {};
  if (apiKey) h["Authorization"] = `Bearer ${apiKey}`;
  return h;
}
function askForKey(message) {
  $("keyrow").style.display = "flex";
  showError(message);
}
function colour(type) {
  if (!(type in colours)) colours[type] = palette[Object.keys(colours).length % palette.length];
  return colours[type];
}
function current() { return models.find((m) => m.name === $("model").value); }
function showError(message) {
  $("out").innerHTML = "";
  const p = document.createElement("p");
  p.className = "error";
  p.textContent = message;
  $("out").appendChild(p);
}
async function call(path, body) {
  const r = await fetch(path, { method: "POST", headers: headers(true), body: JSON.stringify(body) });
  const j = await r.json();
  if (r.status === 401) askForKey(j.error);
  if (!r.ok) throw new Error(j.error || r.statusText);
  return j;
}
function renderTagged(result) {
  const div = document.createElement("div");
  div.className = "tagged";
  const chars = Array.from(result.text);  // offsets are in code points
  let at = 0;
  for (const e of result.entities) {
    div.appendChild(document.createTextNode(chars.slice(at, e.start).join("")));
    const mark = document.createElement("mark");
    mark.className = "entity";
    mark.dataset.type = e.type;
    mark.style.background = colour(e.type);
    mark.appendChild(document.createTextNode(e.text));
    const type = document.createElement("span");
    type.className = "type";
    type.textContent = e.type;
    mark.appendChild(type);
    if (e.confidence !== undefined) {
      const conf = document.createElement("span");
      conf.className = "conf";
      conf.textContent = e.confidence.toFixed(2);
      mark.appendChild(conf);
    }
    div.appendChild(mark);
    at = e.end;
  }
  div.appendChild(document.createTextNode(chars.slice(at).join("")));
  return div;
}
function renderBars(result) {
  const div = document.createElement("div");
  for (const [label, p] of Object.entries(result.probabilities)) {
    const row = document.createElement("div");
    row.className = "bar-row";
    row.dataset.label = label;
    row.innerHTML = '<span class="bar-label"></span><span class="bar-track"><div class="bar"></div></span><span class="bar-value"></span>';
    row.querySelector(".bar-label").textContent = label + (label === result.label ? " \u2713" : "");
    row.querySelector(".bar").style.width = (100 * p).toFixed(1) + "%";
    row.querySelector(".bar-value").textContent = (100 * p).toFixed(1) + "%";
    div.appendChild(row);
  }
  return div;
}
function renderTranslation(result) {
  const div = document.createElement("div");
  const p = document.createElement("p");
  p.id = "translation";
  p.textContent = result.translation;
  div.appendChild(p);
  const h = result.hypotheses[0];
  if (!h || !h.attention) return div;
  // The attention as a heatmap: a row per written token (and <eos>), a column per source token.
  const table = document.createElement("table");
  table.id = "attention";
  const head = document.createElement("tr");
  head.appendChild(document.createElement("th"));
  for (const t of result.source_tokens.concat(["</s>"])) {
    const th = document.createElement("th");
    th.textContent = t;
    head.appendChild(th);
  }
  table.appendChild(head);
  h.attention.forEach((row, i) => {
    const tr = document.createElement("tr");
    const th = document.createElement("th");
    th.textContent = i < h.tokens.length ? h.tokens[i] : "</s>";
    tr.appendChild(th);
    for (const a of row) {
      const td = document.createElement("td");
      td.style.background = `rgba(30, 90, 200, ${a.toFixed(3)})`;
      td.title = a.toFixed(3);
      tr.appendChild(td);
    }
    table.appendChild(tr);
  });
  div.appendChild(table);
  return div;
}
async function generate(m) {
  const pre = document.createElement("div");
  pre.id = "generated";
  const prompt = document.createElement("span");
  prompt.className = "prompt";
  prompt.textContent = $("text").value;
  const text = document.createElement("span");
  text.id = "stream";
  pre.append(prompt, text);
  $("out").appendChild(pre);
  const body = { prompt: $("text").value, stream: true, temperature: Number($("temperature").value),
                 top_k: Number($("topk").value), max_tokens: Number($("maxtokens").value), seed: Date.now() % 100000 };
  const r = await fetch(`/v1/models/${m.name}/generate`, { method: "POST", headers: headers(true), body: JSON.stringify(body) });
  if (r.status === 401) askForKey("this server needs an API key");
  if (!r.ok) throw new Error((await r.json()).error);
  const reader = r.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      if (!event.startsWith("data: ")) continue;
      const e = JSON.parse(event.slice(6));
      if (e.text !== undefined) text.textContent += e.text;
      if (e.done) $("status").textContent = `${e.tokens} tokens (${e.stop_reason})`;
    }
  }
}
async function run() {
  const m = current();
  if (!m) return;
  $("out").innerHTML = "";
  $("status").textContent = "";
  try {
    if (m.task === "ner") {
      const j = await call(`/v1/models/${m.name}/tag`, { texts: [$("text").value] });
      $("out").appendChild(renderTagged(j.results[0]));
    } else if (m.task === "sentiment") {
      const j = await call(`/v1/models/${m.name}/classify`, { texts: [$("text").value] });
      $("out").appendChild(renderBars(j.results[0]));
    } else if (m.task === "seq2seq") {
      const j = await call(`/v1/models/${m.name}/translate`, { texts: [$("text").value], beam: 5, attention: true });
      $("out").appendChild(renderTranslation(j.results[0]));
    } else {
      await generate(m);
    }
  } catch (err) {
    showError(err.message);
  }
}
function describe() {
  const m = current();
  if (!m) return;
  const model = m.model || {};
  $("card").textContent = `${m.task} \u00b7 ${model.cell} ${model.num_layers}\u00d7${model.hidden_size} \u00b7 ${m.parameters.toLocaleString()} parameters \u00b7 rnnkit ${m.rnnkit_version}`;
  for (const el of document.querySelectorAll(".lm-only")) el.style.display = m.task === "lm" ? "inline" : "none";
}
async function init() {
  try {
    const r = await fetch("/v1/models", { headers: headers(false) });
    const j = await r.json();
    if (r.status === 401) {
      $("card").textContent = "";
      return askForKey(apiKey ? "that API key is not this server's" : "this server needs an API key (--api-key-file): enter it above");
    }
    if (!r.ok) throw new Error(j.error || r.statusText);
    $("keyrow").style.display = "none";
    $("out").innerHTML = "";
    models = j.models;
    $("model").innerHTML = "";
    for (const m of models) {
      const o = document.createElement("option");
      o.value = m.name;
      o.textContent = `${m.name} (${m.task})`;
      $("model").appendChild(o);
    }
    describe();
  } catch (err) {
    $("card").textContent = "";
    showError(err.message);
  }
}
$("model").addEventListener("change", () => { describe(); $("out").innerHTML = ""; });
$("run").addEventListener("click", run);
$("usekey").addEventListener("click", () => { apiKey = $("apikey").value.trim(); init(); });
init();
</script>
</body>
</html>
)PAGE";

}  // namespace rnnkit::serve
