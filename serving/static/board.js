// The OTD board (看板): plain JS, no build step, charts by the vendored uPlot (served with the
// app, see VENDORED.md). Texts from /v1/messages, figures from /v1/board; the key and the
// language are the planner's page's (sessionStorage, same names). Every figure is a link to the
// planner's list with the filters of the orders behind it (the `link` of each row).
"use strict";

const STAGES = ["order", "confirmation", "planning", "procurement", "production", "quality",
  "warehouse", "shipping"];
const KEY = "otd-risk.key";
const LANG = "otd-risk.lang";
const state = { lang: "en", msg: {}, board: null, charts: [], weekly: null };
const $ = (id) => document.getElementById(id);

function t(key, kw = {}) {
  const text = state.msg[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (m, name) => (name in kw ? String(kw[name]) : m));
}

function initialLang() {
  const asked = new URLSearchParams(location.search).get("lang");
  if (asked) return asked;
  const saved = sessionStorage.getItem(LANG);
  if (saved) return saved;
  return (navigator.language || "en").toLowerCase().startsWith("zh") ? "zh" : "en";
}

async function loadMessages(lang) {
  const r = await fetch(`/v1/messages?lang=${encodeURIComponent(lang)}`);
  const body = await r.json();
  state.lang = body.lang;
  state.msg = body.messages;
  sessionStorage.setItem(LANG, state.lang);
  document.documentElement.lang = state.lang === "zh" ? "zh-Hans" : "en";
  document.title = t("board.title");
  document.querySelectorAll("[data-i18n]").forEach((el) => {
    el.textContent = t(el.dataset.i18n);
  });
  document.querySelectorAll("[data-lang]").forEach((b) => {
    b.classList.toggle("active", b.dataset.lang === state.lang);
  });
}

async function api(path) {
  let r;
  try {
    r = await fetch(path, { headers: { Authorization: `Bearer ${sessionStorage.getItem(KEY)}` } });
  } catch (e) {
    throw new Error(t("error.network", { detail: e.message }));
  }
  if (r.status === 401) {
    sessionStorage.removeItem(KEY);
    showKeyPanel();
  }
  if (!r.ok) {
    let detail = r.statusText;
    try {
      detail = (await r.json())?.error?.message ?? detail;
    } catch (e) { /* not JSON */ }
    throw new Error(r.status === 401 ? t("error.unauthorized") : t("error.generic",
      { status: r.status, detail }));
  }
  return r;
}

function showError(message) {
  $("error").hidden = !message;
  $("error").textContent = message || "";
}

const pct = (v) => (v == null ? "–" : `${(100 * v).toFixed(1)}%`);
const num = (v, digits = 0) => Number(v).toLocaleString(state.lang === "zh" ? "zh-CN" : "en-GB",
  { maximumFractionDigits: digits, minimumFractionDigits: digits });

function figure(text, link, cls) {
  // A number that opens the orders behind it in the planner's list.
  const a = document.createElement("a");
  a.className = `figure${cls ? ` ${cls}` : ""}`;
  a.href = link;
  a.textContent = text;
  return a;
}

function row(tbody, cells) {
  const tr = document.createElement("tr");
  cells.forEach((c) => {
    const td = document.createElement("td");
    if (c instanceof Node) td.append(c);
    else td.textContent = c ?? "";
    const text = c instanceof Node ? c.textContent : String(c ?? "");
    if (/^[\d.,%–\s-]+$/.test(text)) td.className = "num";  // numbers right-aligned
    tr.append(td);
  });
  tbody.append(tr);
  return tr;
}

function fmtTime(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString(state.lang === "zh" ? "zh-CN" : "en-GB",
    { dateStyle: "medium", timeStyle: "short" });
}

// -- charts ------------------------------------------------------------------------------------
function clearCharts() {
  [state.weekly, ...state.charts].forEach((c) => c?.destroy());
  state.charts = [];
  state.weekly = null;
}

function chartWidth(el) {
  return Math.max(280, el.clientWidth || el.parentElement.clientWidth - 32);
}

function onClickPoint(u, links) {
  // A click on the chart opens the orders of the point under the cursor.
  u.over.addEventListener("click", () => {
    const i = u.cursor.idx;
    if (i != null && links[i]) location.href = links[i];
  });
}

function weeklyChart() {
  const el = $("weekly-chart");
  state.weekly?.destroy();
  state.weekly = null;
  el.replaceChildren();
  const [scope, key] = JSON.parse($("series").value || '["all",""]');
  const rows = state.board.weekly.filter((w) => w.scope === scope && w.key === key);
  $("series-link").href = rows.length ? rows[0].link : state.board.summary.link;
  if (!window.uPlot || rows.length === 0) return;
  const xs = rows.map((w) => Date.parse(`${w.week}T00:00:00Z`) / 1000);
  const ys = rows.map((w) => 100 * w.on_time_rate);
  const u = new uPlot({
    width: chartWidth(el), height: 240,
    scales: { y: { range: [0, 100] } },
    series: [{ label: t("board.weekly.week"),
      value: (s, v) => (v == null ? "" : new Date(v * 1000).toISOString().slice(0, 10)) },
      { label: t("board.weekly.rate"), stroke: "#1f5fbf", width: 2, fill: "rgba(31,95,191,.08)",
        value: (s, v) => (v == null ? "" : `${v.toFixed(1)}%`) }],
    axes: [{}, { values: (s, splits) => splits.map((v) => `${v}%`) }],
  }, [xs, ys], el);
  onClickPoint(u, rows.map((w) => w.link));
  state.weekly = u;
}

function barChart(el, labels, values, links, label, color) {
  el.replaceChildren();
  if (!window.uPlot || values.length === 0) return;
  const xs = labels.map((_, i) => i);
  const u = new uPlot({
    width: chartWidth(el), height: 220,
    scales: { x: { time: false, range: [-0.5, labels.length - 0.5] }, y: { range: (s, lo, hi) =>
      [0, Math.max(1, hi * 1.1)] } },
    series: [{ label: t("board.col.stage"), value: (s, v) => (v == null ? "" : labels[v] ?? "") },
      { label, fill: color, stroke: color, paths: uPlot.paths.bars({ size: [0.6, 80] }),
        points: { show: false }, value: (s, v) => (v == null ? "" : num(v, 1)) }],
    axes: [{ splits: () => xs, values: (s, splits) => splits.map((i) => labels[i] ?? "") }, {}],
    legend: { show: true },
  }, [xs, values], el);
  onClickPoint(u, links);
  state.charts.push(u);
}

// -- tables ------------------------------------------------------------------------------------
function fillSeries() {
  const sel = $("series");
  const current = sel.value;
  const seen = new Set();
  sel.replaceChildren(new Option(t("board.weekly.all"), JSON.stringify(["all", ""])));
  state.board.weekly.forEach((w) => {
    const id = JSON.stringify([w.scope, w.key]);
    if (w.scope === "all" || seen.has(id)) return;
    seen.add(id);
    const text = t(w.scope === "plant" ? "board.weekly.plant" : "board.weekly.customer",
      { key: w.key });
    sel.append(new Option(text, id));
  });
  if ([...sel.options].some((o) => o.value === current)) sel.value = current;
}

function renderLost() {
  const b = state.board;
  const lost = b.lost_by_stage;
  const tbody = $("lost-table").querySelector("tbody");
  tbody.replaceChildren();
  lost.forEach((s) => {
    const tr = row(tbody, [s.stage_name, s.owner_name, figure(num(s.days_lost, 1), s.link),
      figure(num(s.late_orders), s.link)]);
    tr.dataset.stage = s.stage;
  });
  const inOrder = STAGES.map((st) => lost.find((s) => s.stage === st)).filter(Boolean);
  barChart($("lost-chart"), inOrder.map((s) => s.stage_name), inOrder.map((s) => s.days_lost),
    inOrder.map((s) => s.link), t("board.col.days_lost"), "#d63031");
  const owners = $("owner-table").querySelector("tbody");
  owners.replaceChildren();
  b.lost_by_owner.forEach((o) => {
    const tr = row(owners, [o.owner_name, figure(num(o.days_lost, 1), o.link),
      figure(num(o.late_orders), o.link)]);
    tr.dataset.owner = o.owner;
  });
}

function renderOpen() {
  // Owners as rows, top stages as columns, each count a link to those orders.
  const open = state.board.open_at_risk;
  const stages = STAGES.filter((s) => open.some((o) => o.stage === s));
  const owners = [...new Set(open.map((o) => o.owner))];
  const head = $("open-table").querySelector("thead");
  const tbody = $("open-table").querySelector("tbody");
  head.replaceChildren();
  tbody.replaceChildren();
  $("open-empty").hidden = open.length > 0;
  if (!open.length) return;
  const htr = document.createElement("tr");
  [t("board.col.owner"), ...stages.map((s) => t(`stage.${s}`)), t("board.col.total")]
    .forEach((text) => {
      const th = document.createElement("th");
      th.textContent = text;
      htr.append(th);
    });
  head.append(htr);
  owners.forEach((owner) => {
    const mine = open.filter((o) => o.owner === owner);
    const cells = [mine[0].owner_name];
    stages.forEach((s) => {
      const cell = mine.find((o) => o.stage === s);
      cells.push(cell ? figure(num(cell.orders), cell.link) : "–");
    });
    const total = mine.reduce((a, o) => a + o.orders, 0);
    const ownerLink = `/?${new URLSearchParams({ owner, min_risk: String(state.board.min_risk) })}`;
    cells.push(figure(num(total), ownerLink));
    const tr = row(tbody, cells);
    tr.dataset.owner = owner;
  });
}

function renderSuppliersPlants() {
  const sup = $("supplier-table").querySelector("tbody");
  sup.replaceChildren();
  state.board.suppliers.forEach((s) => {
    row(sup, [s.supplier_id, num(s.purchase_orders), num(s.late),
      figure(num(s.days_added, 0), s.link)]).dataset.supplier = s.supplier_id;
  });
  const plants = $("plant-table").querySelector("tbody");
  plants.replaceChildren();
  state.board.plants.forEach((p) => {
    row(plants, [figure(p.plant_id, p.link), num(p.delivered), num(p.late), pct(p.on_time_rate),
      figure(num(p.days_late, 0), p.link)]).dataset.plant = p.plant_id;
  });
}

function render() {
  const b = state.board;
  clearCharts();
  $("summary").href = b.summary.link;
  $("summary").textContent = t("board.meta", {
    since: fmtTime(b.since), as_of: fmtTime(b.as_of), delivered: num(b.summary.delivered),
    rate: pct(b.summary.on_time_rate) });
  $("meta-run").textContent = b.run
    ? t("board.meta.run", { scored_at: fmtTime(b.run.created_at), min_risk: pct(b.min_risk) })
    : t("board.meta.no_run");
  fillSeries();
  weeklyChart();
  renderLost();
  renderOpen();
  renderSuppliersPlants();
}

async function load() {
  showError("");
  try {
    const r = await api(`/v1/board?lang=${state.lang}`);
    state.board = await r.json();
    render();
    document.body.dataset.loaded = state.lang;
  } catch (e) {
    showError(e.message);
  }
}

async function exportBoard() {
  showError("");
  try {
    const r = await api(`/v1/board/export?format=xlsx&lang=${state.lang}`);
    const a = document.createElement("a");
    a.href = URL.createObjectURL(await r.blob());
    const named = /filename="([^"]+)"/.exec(r.headers.get("Content-Disposition") || "");
    a.download = named ? named[1] : "otd-risk-board.xlsx";
    document.body.append(a);
    a.click();
    setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
  } catch (e) {
    showError(e.message);
  }
}

function showKeyPanel() {
  $("key-panel").hidden = false;
  $("main").hidden = true;
  $("api-key").focus();
}

function showMain() {
  $("key-panel").hidden = true;
  $("main").hidden = false;
}

function bind() {
  $("key-form").addEventListener("submit", (e) => {
    e.preventDefault();
    sessionStorage.setItem(KEY, $("api-key").value.trim());
    $("api-key").value = "";
    showMain();
    load();
  });
  $("series").addEventListener("change", weeklyChart);
  $("export-xlsx").addEventListener("click", exportBoard);
  document.querySelectorAll("[data-lang]").forEach((b) => {
    b.addEventListener("click", async () => {
      await loadMessages(b.dataset.lang);
      if (sessionStorage.getItem(KEY)) load();
    });
  });
}

async function start() {
  bind();
  await loadMessages(initialLang());
  if (sessionStorage.getItem(KEY)) {
    showMain();
    load();
  } else {
    showKeyPanel();
  }
}

start();
