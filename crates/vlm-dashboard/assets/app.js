// The dashboard page: hash routes over the /api/evals API, plain DOM, charts as SVG.
"use strict";

const view = document.getElementById("view");
const keyInput = document.getElementById("api-key");
keyInput.value = localStorage.getItem("vlm-api-key") || "";
keyInput.addEventListener("change", () => localStorage.setItem("vlm-api-key", keyInput.value));
let liveStream = null;

function esc(s) {
  return String(s ?? "").replace(/[&<>"']/g, c => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
}
function num(v, digits = 4) { return typeof v === "number" ? v.toFixed(digits).replace(/\.?0+$/, "") || "0" : "–"; }
function when(ms) { return ms ? new Date(ms).toLocaleString() : "–"; }
function headers(json) {
  const h = {};
  if (json) h["content-type"] = "application/json";
  if (keyInput.value) h["authorization"] = "Bearer " + keyInput.value;
  return h;
}
async function api(path, options = {}) {
  const r = await fetch("/api/evals" + path, {...options, headers: headers(options.body)});
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(body.error ? body.error.message : r.statusText);
  return body;
}
function status(s) { return `<span class="status ${esc(s)}">${esc(s)}</span>`; }

// A table whose columns sort on a click of their header.
function sortableTable(id, columns, rows) {
  const html = `<table id="${id}"><thead><tr>${columns.map((c, i) => `<th data-i="${i}">${esc(c.title)}</th>`).join("")}</tr></thead>
    <tbody>${rows.map(r => `<tr>${columns.map(c => `<td class="${c.num ? "num" : ""}" data-v="${esc(c.value(r))}">${c.html ? c.html(r) : esc(c.value(r))}</td>`).join("")}</tr>`).join("")}</tbody></table>`;
  setTimeout(() => {
    const table = document.getElementById(id);
    if (!table) return;
    table.querySelectorAll("th").forEach(th => th.addEventListener("click", () => {
      const i = +th.dataset.i, body = table.tBodies[0];
      const dir = th.dataset.dir === "asc" ? "desc" : "asc";
      th.dataset.dir = dir;
      const rowsSorted = [...body.rows].sort((a, b) => {
        const x = a.cells[i].dataset.v, y = b.cells[i].dataset.v;
        const nx = parseFloat(x), ny = parseFloat(y);
        const cmp = !isNaN(nx) && !isNaN(ny) ? nx - ny : x.localeCompare(y);
        return dir === "asc" ? cmp : -cmp;
      });
      rowsSorted.forEach(r => body.appendChild(r));
    }));
  });
  return html;
}

// Horizontal bars, one per (label, value), as SVG.
function bars(items, max) {
  if (!items.length) return "";
  max = max || Math.max(...items.map(i => i.value), 1e-9);
  const h = 18, w = 520, label = 170;
  return `<svg width="${w + label + 60}" height="${items.length * h + 4}" role="img">${items.map((it, k) => {
    const len = Math.max(0, it.value / max) * w;
    return `<text x="0" y="${k * h + 13}">${esc(it.label)}</text>
      <rect x="${label}" y="${k * h + 3}" width="${len}" height="${h - 6}" fill="#2563eb"></rect>
      <text x="${label + len + 4}" y="${k * h + 13}">${num(it.value, 3)}</text>`;
  }).join("")}</svg>`;
}

// A metric over time, one polyline (and dots) per model, as SVG.
function lines(runs) {
  const w = 640, h = 180, pad = 36, palette = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2"];
  const xs = runs.map(r => r.finished_at), ys = runs.map(r => r.primary_value);
  const [x0, x1] = [Math.min(...xs), Math.max(...xs)], [y0, y1] = [Math.min(0, ...ys), Math.max(...ys, 1e-9)];
  const X = x => pad + (x1 > x0 ? (x - x0) / (x1 - x0) : 0.5) * (w - 2 * pad);
  const Y = y => h - pad + 8 - (y1 > y0 ? (y - y0) / (y1 - y0) : 0.5) * (h - 2 * pad);
  const models = [...new Set(runs.map(r => r.model))];
  const series = models.map((m, i) => {
    const pts = runs.filter(r => r.model === m).sort((a, b) => a.finished_at - b.finished_at);
    const color = palette[i % palette.length];
    return `<polyline fill="none" stroke="${color}" stroke-width="2" points="${pts.map(r => `${X(r.finished_at)},${Y(r.primary_value)}`).join(" ")}"></polyline>` +
      pts.map(r => `<circle cx="${X(r.finished_at)}" cy="${Y(r.primary_value)}" r="3" fill="${color}"><title>${esc(m)}: ${num(r.primary_value)} (${esc(when(r.finished_at))})</title></circle>`).join("") +
      `<text x="${w - pad + 6}" y="${14 + i * 14}" fill="${color}">${esc(m)}</text>`;
  }).join("");
  return `<svg width="${w + 140}" height="${h}" role="img"><line x1="${pad}" y1="${h - pad + 8}" x2="${w - pad}" y2="${h - pad + 8}" stroke="#e4e7ec"></line>
    <text x="2" y="${Y(y1) + 4}">${num(y1, 3)}</text><text x="2" y="${Y(y0) + 4}">${num(y0, 3)}</text>${series}</svg>`;
}

// The breakdown a run's details hold: MME categories, MMMU domains, a task file's primary
// metric per value of its first breakdown column.
function breakdown(details) {
  if (!details) return [];
  if (details.by) {
    const first = Object.values(details.by)[0] || {};
    return Object.entries(first).map(([k, v]) => ({label: k, value: +(v[details.primary_metric] ?? 0)}));
  }
  if (details.categories) return Object.entries(details.categories).map(([k, v]) => ({label: k, value: +v}));
  const parts = details.breakdown || details.domains || details.subjects;
  if (!parts) return [];
  let entries = Object.entries(parts);
  // MMMU: its domains ("Overall-Science", ...) rather than every subject.
  const domains = entries.filter(([k]) => k.startsWith("Overall-"));
  if (domains.length) entries = domains.map(([k, v]) => [k.slice("Overall-".length), v]);
  return entries.map(([k, v]) => ({label: k, value: typeof v === "object" ? +(v.acc ?? v.accuracy ?? 0) : +v}));
  return [];
}

async function leaderboards() {
  const tasks = await api("/tasks");
  let html = "<h1>Leaderboards</h1>";
  if (!tasks.length) html += `<p class="muted">No tasks yet: run <code>vlm-eval sweep</code> or <code>vlm-eval --db</code>.</p>`;
  for (const t of tasks) {
    const rows = await api(`/tasks/${encodeURIComponent(t.name)}/leaderboard`);
    const other = [...new Set(rows.flatMap(r => Object.keys(r.metrics || {})))];
    html += `<h2 id="board-${esc(t.name)}">${esc(t.display_name)} <span class="muted">(${esc(t.primary_metric)})</span></h2>`;
    html += sortableTable(`lb-${t.name}`, [
      {title: "rank", value: r => r.rank, num: true},
      {title: "model", value: r => r.model, html: r => `<a href="#/run/${esc(r.run_id)}">${esc(r.model)}</a>`},
      {title: t.primary_metric, value: r => r.value, num: true, html: r => num(r.value)},
      ...other.map(m => ({title: m, value: r => r.metrics[m] ?? "", num: true, html: r => num(r.metrics[m])})),
      {title: "samples", value: r => r.samples ?? "", num: true},
      {title: "date", value: r => r.finished_at || 0, html: r => esc(when(r.finished_at))},
    ], rows);
    const best = rows[0];
    const parts = best ? breakdown(best.details) : [];
    if (parts.length) html += `<p class="muted">Breakdown of ${esc(best.model)}:</p>` + bars(parts);
    const history = (await api(`/tasks/${encodeURIComponent(t.name)}/runs?status=completed`))
      .filter(r => typeof r.primary_value === "number" && r.finished_at);
    if (history.length > 1) html += `<p class="muted">${esc(t.primary_metric)} over time, per model:</p>` + lines(history);
  }
  view.innerHTML = html;
}

async function runsList() {
  const runs = await api("/runs");
  view.innerHTML = "<h1>Runs</h1>" + sortableTable("runs", [
    {title: "run", value: r => r.id, html: r => `<a href="#/run/${esc(r.id)}">${esc(r.id)}</a>`},
    {title: "model", value: r => r.model},
    {title: "task", value: r => r.task},
    {title: "status", value: r => r.status, html: r => status(r.status)},
    {title: "primary", value: r => r.primary_value ?? "", num: true, html: r => num(r.primary_value)},
    {title: "progress", value: r => r.progress_done ?? "", html: r => r.progress_total ? `${r.progress_done}/${r.progress_total}` : "–"},
    {title: "created", value: r => r.created_at, html: r => esc(when(r.created_at))},
    {title: "error", value: r => (r.error || "").split("\n")[0]},
  ], runs);
}

async function runPage(id) {
  const run = await api(`/runs/${encodeURIComponent(id)}`);
  const artifacts = await api(`/runs/${encodeURIComponent(id)}/artifacts`).catch(() => []);
  view.innerHTML = `<h1>${esc(run.model)} on ${esc(run.task)} ${status(run.status)}</h1>
    <p class="muted">run ${esc(run.id)} · ${esc(run.host || "")} ${esc(run.worker || "")} · created ${esc(when(run.created_at))}</p>
    <div id="live"><div class="bar"><div id="progress-bar" style="width:0%"></div></div>
      <p id="progress-text" class="muted">waiting for progress…</p></div>
    <div id="metrics"></div><div id="chart"></div>
    <p class="error" id="run-error">${esc(run.error || "")}</p>
    <h2>Log</h2><pre class="log" id="log"></pre>
    <h2>Files</h2><ul id="files">${fileItems(id, artifacts)}</ul>
    <h2>Samples <label class="muted"><input type="checkbox" id="wrong-only"> wrong only</label></h2><div id="samples"></div>`;
  showMetrics(run);
  document.getElementById("wrong-only").addEventListener("change", () => samples(id, 0));
  samples(id, 0);
  const source = new EventSource(`/api/evals/runs/${encodeURIComponent(id)}/events`);
  liveStream = source;
  source.addEventListener("progress", e => {
    const p = JSON.parse(e.data);
    const pct = p.total ? (100 * p.done / p.total) : 0;
    document.getElementById("progress-bar").style.width = pct.toFixed(1) + "%";
    document.getElementById("progress-text").textContent =
      `${p.done} / ${p.total} samples` + (p.samples_per_s ? ` · ${p.samples_per_s.toFixed(2)} samples/s` : "") +
      (p.eta_s != null ? ` · ETA ${Math.round(p.eta_s)} s` : "");
  });
  source.addEventListener("status", e => {
    const s = JSON.parse(e.data).status;
    document.querySelector("h1 .status").outerHTML = status(s);
  });
  source.addEventListener("log", e => {
    const log = document.getElementById("log");
    log.textContent += JSON.parse(e.data).lines.join("\n") + "\n";
    log.scrollTop = log.scrollHeight;
  });
  source.addEventListener("final", e => {
    const final = JSON.parse(e.data);
    document.querySelector("h1 .status").outerHTML = status(final.status);
    document.getElementById("run-error").textContent = final.error || "";
    showMetrics(final);
    if (final.progress_total) {
      const pct = 100 * final.progress_done / final.progress_total;
      document.getElementById("progress-bar").style.width = pct.toFixed(1) + "%";
      const text = document.getElementById("progress-text");
      if (!text.textContent.startsWith(`${final.progress_done} / `)) {
        text.textContent = `${final.progress_done} / ${final.progress_total} samples`;
      }
    }
    document.getElementById("live").dataset.final = final.status;
    source.close();
    samples(id, 0);
    api(`/runs/${encodeURIComponent(id)}/artifacts`)
      .then(files => { document.getElementById("files").innerHTML = fileItems(id, files); })
      .catch(() => {});
  });
}

function fileItems(id, files) {
  return files.map(a => `<li><a href="/api/evals/runs/${esc(id)}/artifacts/${encodeURIComponent(a.name)}">${esc(a.name)}</a> <span class="muted">${a.bytes} bytes</span></li>`).join("");
}

function showMetrics(run) {
  const entries = Object.entries(run.metrics || {});
  document.getElementById("metrics").innerHTML = entries.length ? `<table><tr><th>metric</th><th>value</th></tr>${entries.map(([k, v]) => `<tr><td>${esc(k)}</td><td class="num" data-metric="${esc(k)}">${num(v)}</td></tr>`).join("")}</table>` : "";
  document.getElementById("chart").innerHTML = bars(breakdown(run.details));
}

async function samples(id, offset) {
  const wrong = document.getElementById("wrong-only")?.checked;
  const box = document.getElementById("samples");
  try {
    const page = await api(`/runs/${encodeURIComponent(id)}/samples?offset=${offset}&limit=25${wrong ? "&correct=false" : ""}`);
    box.innerHTML = `<p class="muted">${page.total} sample(s)</p><table><tr><th>doc</th><th>image</th><th>prompt</th><th>target</th><th>response</th><th>parsed</th><th></th></tr>
      ${page.samples.map(s => `<tr><td>${esc(s.doc_id)}</td><td><img class="thumb" loading="lazy" alt="" src="/api/evals/runs/${encodeURIComponent(id)}/samples/${esc(s.doc_id)}/images/0" onerror="this.remove()"></td><td>${esc(s.input)}</td><td>${esc(s.target)}</td><td>${esc(s.response)}</td><td>${esc(typeof s.parsed === "string" ? s.parsed : JSON.stringify(s.parsed))}</td><td class="${s.correct ? "right" : "wrong"}">${s.correct ? "right" : "wrong"}</td></tr>`).join("")}</table>
      ${offset > 0 ? `<button id="prev">previous</button>` : ""} ${offset + 25 < page.total ? `<button id="next">next</button>` : ""}`;
    document.getElementById("prev")?.addEventListener("click", () => samples(id, Math.max(0, offset - 25)));
    document.getElementById("next")?.addEventListener("click", () => samples(id, offset + 25));
  } catch (e) {
    box.innerHTML = `<p class="muted">${esc(e.message)}</p>`;
  }
}

async function comparePage(params) {
  const runs = (await api("/runs?status=completed"));
  const options = sel => runs.map(r => `<option value="${esc(r.id)}" ${r.id === sel ? "selected" : ""}>${esc(r.task)} · ${esc(r.model)} · ${esc(r.id)}</option>`).join("");
  let html = `<h1>Compare two runs</h1><form id="cmp"><label>A</label><select name="a">${options(params.get("a"))}</select>
    <label>B</label><select name="b">${options(params.get("b"))}</select><br><button>Compare</button></form><div id="cmp-out"></div>`;
  view.innerHTML = html;
  document.getElementById("cmp").addEventListener("submit", e => {
    e.preventDefault();
    const f = new FormData(e.target);
    location.hash = `#/compare?a=${f.get("a")}&b=${f.get("b")}`;
  });
  if (params.get("a") && params.get("b")) {
    const out = document.getElementById("cmp-out");
    try {
      const c = await api(`/compare?a=${encodeURIComponent(params.get("a"))}&b=${encodeURIComponent(params.get("b"))}`);
      const p = c.paired;
      out.innerHTML = `<h2>Metrics (B − A)</h2><table><tr><th>metric</th><th>A</th><th>B</th><th>delta</th></tr>
        ${Object.entries(c.metrics).map(([k, m]) => `<tr><td>${esc(k)}</td><td class="num">${num(m.a)}</td><td class="num">${num(m.b)}</td><td class="num">${num(m.delta)}</td></tr>`).join("")}</table>
        <h2>Paired samples</h2><p>${p.samples} shared samples: both right ${p.both_right}, both wrong ${p.both_wrong}, only A right ${p.only_a_right}, only B right ${p.only_b_right}.
        McNemar's exact test: <b>p = ${p.mcnemar_exact_p.toPrecision(3)}</b> ${p.mcnemar_exact_p < 0.05 ? "(the difference is unlikely to be chance)" : "(not distinguishable from chance)"}.</p>
        <h2>Disagreements</h2><table><tr><th>doc</th><th>prompt</th><th>target</th><th>A</th><th>B</th></tr>
        ${c.disagreements.map(d => `<tr><td>${esc(d.doc_id)}</td><td>${esc(d.input)}</td><td>${esc(d.target)}</td><td class="${d.a.correct ? "right" : "wrong"}">${esc(d.a.response)}</td><td class="${d.b.correct ? "right" : "wrong"}">${esc(d.b.response)}</td></tr>`).join("")}</table>`;
    } catch (e) {
      out.innerHTML = `<p class="error">${esc(e.message)}</p>`;
    }
  }
}

async function queuePage() {
  const [models, tasks] = await Promise.all([api("/models"), api("/tasks")]);
  view.innerHTML = `<h1>Queue a run for the workers</h1><form id="queue">
    <label>Model</label><select name="model">${models.map(m => `<option>${esc(m.name)}</option>`).join("")}</select>
    <label>Task</label><select name="task">${tasks.filter(t => t.known).map(t => `<option>${esc(t.name)}</option>`).join("")}</select>
    <label>Limit (optional)</label><input name="limit" type="number" min="1">
    <br><button>Queue</button></form><p id="queue-out"></p>
    <p class="muted">Workers (<code>vlm-eval worker --db URL</code>) claim queued runs.</p>`;
  document.getElementById("queue").addEventListener("submit", async e => {
    e.preventDefault();
    const f = new FormData(e.target), out = document.getElementById("queue-out");
    const body = {model_name: f.get("model")};
    if (f.get("limit")) body.limit = +f.get("limit");
    try {
      const run = await api(`/tasks/${encodeURIComponent(f.get("task"))}/runs`, {method: "POST", body: JSON.stringify(body)});
      out.innerHTML = `Queued <a href="#/run/${esc(run.id)}">${esc(run.id)}</a>.`;
    } catch (err) {
      out.innerHTML = `<span class="error">${esc(err.message)}</span>`;
    }
  });
}

async function route() {
  if (liveStream) { liveStream.close(); liveStream = null; }
  const hash = location.hash.slice(1) || "/";
  const [path, query] = hash.split("?");
  const params = new URLSearchParams(query || "");
  try {
    if (path.startsWith("/run/")) await runPage(decodeURIComponent(path.slice(5)));
    else if (path === "/runs") await runsList();
    else if (path === "/compare") await comparePage(params);
    else if (path === "/queue") await queuePage();
    else await leaderboards();
  } catch (e) {
    view.innerHTML = `<p class="error">${esc(e.message)}</p>`;
  }
}
window.addEventListener("hashchange", route);
route();
