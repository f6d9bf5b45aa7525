// The planner's page: plain JS, no build step. Texts come from the server's message catalogue
// (/v1/messages), data from /v1/orders/at-risk with the key kept in sessionStorage.
// Per order: the predicted delivery with its 80% interval, a past-due badge, and a bar of the
// days each process stage adds beyond its plan (the top stage is its longest part); the model's
// signals (stage contributions, log-odds) are in the order's detail; who owns the order (its top
// stage's department) and whether a planner marked it handled (POST /v1/orders/{id}/ack: the
// worklist, handled=false, is the default view). Drawn with HTML and CSS only: the page's
// Content-Security-Policy allows nothing from elsewhere.
"use strict";

const STAGES = ["order", "confirmation", "planning", "procurement", "production", "quality",
  "warehouse", "shipping"];
const PROCESS_STAGES = STAGES.slice(1);  // the stages that take days (stage_days)
const DAY_MS = 86400000;
const PAGE_SIZE = 100;
const KEY = "otd-risk.key";
const LANG = "otd-risk.lang";

const state = { lang: "en", msg: {}, offset: 0, total: 0, hasForecast: true, page: null };
const $ = (id) => document.getElementById(id);

function t(key, kw = {}) {
  const text = state.msg[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (m, name) => (name in kw ? String(kw[name]) : m));
}

function initialLang() {
  const saved = sessionStorage.getItem(LANG);
  if (saved) return saved;
  return (navigator.language || "en").toLowerCase().startsWith("zh") ? "zh" : "en";
}

async function loadMessages(lang) {
  const r = await fetch(`/v1/messages?lang=${lang}`);
  const body = await r.json();
  state.lang = body.lang;
  state.msg = body.messages;
  sessionStorage.setItem(LANG, state.lang);
  document.documentElement.lang = state.lang === "zh" ? "zh-Hans" : "en";
  document.title = t("ui.title");
  document.querySelectorAll("[data-i18n]").forEach((el) => {
    el.textContent = t(el.dataset.i18n);
  });
  document.querySelectorAll("[data-lang]").forEach((b) => {
    b.classList.toggle("active", b.dataset.lang === state.lang);
  });
  fillStageSelect();
  fillPastDueSelect();
  fillHandledSelect();
  drawLegend();
}

function fillHandledSelect() {
  const sel = $("f-handled");
  const current = sel.value || "false";
  sel.replaceChildren(new Option(t("ui.filter.handled.false"), "false"),
    new Option(t("ui.filter.handled.true"), "true"),
    new Option(t("ui.filter.handled.all"), "all"));
  sel.value = current;
}

function stageName(stage) {
  return t(`stage.${stage}`);
}

function fillStageSelect() {
  const sel = $("f-stage");
  const current = sel.value;
  sel.replaceChildren(new Option(t("ui.filter.any"), ""));
  STAGES.forEach((s) => sel.append(new Option(stageName(s), s)));
  sel.value = current;
}

function fillPastDueSelect() {
  const sel = $("f-past-due");
  const current = sel.value;
  sel.replaceChildren(new Option(t("ui.filter.any"), ""),
    new Option(t("ui.filter.past_due.yes"), "true"),
    new Option(t("ui.filter.past_due.no"), "false"));
  sel.value = current;
}

function drawLegend() {
  const legend = $("legend");
  legend.replaceChildren();
  (state.hasForecast ? PROCESS_STAGES : STAGES).forEach((s) => {
    const item = document.createElement("span");
    item.className = "legend-item";
    item.innerHTML = `<i class="sw st-${s}"></i>`;
    item.append(stageName(s));
    legend.append(item);
  });
  const note = document.createElement("span");
  note.className = "legend-note";
  note.textContent = t(state.hasForecast ? "ui.legend" : "ui.legend.signals");
  legend.append(note);
}

function filters() {
  const p = new URLSearchParams();
  const val = (id) => $(id).value.trim();
  if (val("f-plant")) p.set("plant", val("f-plant"));
  if (val("f-customer")) p.set("customer", val("f-customer"));
  // The window is half-open, as the API's: due on or after "due from", strictly before
  // "due before".
  if (val("f-due-after")) p.set("due_after", val("f-due-after"));
  if (val("f-due-before")) p.set("due_before", val("f-due-before"));
  if (val("f-min-risk")) p.set("min_risk", String(Number(val("f-min-risk")) / 100));
  if (val("f-stage")) p.set("stage", val("f-stage"));
  if (val("f-past-due")) p.set("past_due", val("f-past-due"));
  if (val("f-min-days-late")) p.set("min_days_late", val("f-min-days-late"));
  if (val("f-owner")) p.set("owner", val("f-owner"));
  if (val("f-supplier")) p.set("supplier", val("f-supplier"));
  p.set("handled", val("f-handled") || "false");
  p.set("lang", state.lang);
  return p;
}

async function api(path, method = "GET", body = undefined) {
  let r;
  const headers = { Authorization: `Bearer ${sessionStorage.getItem(KEY)}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  try {
    r = await fetch(path, { method, headers,
      body: body === undefined ? undefined : JSON.stringify(body) });
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
      const body = await r.json();
      detail = body?.error?.message ?? (typeof body.detail === "string" ? body.detail
        : JSON.stringify(body.detail));
    } catch (e) { /* not JSON */ }
    throw new Error(r.status === 401 ? t("error.unauthorized") : t("error.generic",
      { status: r.status, detail }));
  }
  return r;
}

function showError(message) {
  const el = $("error");
  el.hidden = !message;
  el.textContent = message || "";
}

function contributions(item) {
  // Stage contributions keyed by stage (accepts "procurement" or "stage_procurement").
  const out = {};
  Object.entries(item.stage_contributions || {}).forEach(([k, v]) => {
    out[k.replace(/^stage_/, "")] = v;
  });
  return out;
}

function signalsBar(item, scale) {
  // The model's stage contributions (log-odds): what pushed the risk score, not days.
  const wrap = document.createElement("div");
  wrap.className = "bar signals";
  const c = contributions(item);
  const tips = [];
  STAGES.forEach((s) => {
    const v = c[s] ?? 0;
    tips.push(`${stageName(s)}: ${v >= 0 ? "+" : ""}${v.toFixed(2)}`);
    if (v <= 0) return;
    const seg = document.createElement("span");
    seg.className = `seg st-${s}`;
    seg.dataset.stage = s;
    seg.style.width = `${(100 * v) / scale}%`;
    wrap.append(seg);
  });
  wrap.title = tips.join("\n");
  return wrap;
}

function signalsScale(items) {
  return Math.max(1e-9, ...items.map((it) =>
    Object.values(contributions(it)).reduce((a, v) => a + Math.max(v, 0), 0)));
}

function barDays(item) {
  // The days the bar draws: each stage's if the order is late (what top_stage is chosen by),
  // else, for a run recorded before them, the expected days.
  const ifLate = item.stage_days_if_late || {};
  return Object.keys(ifLate).length ? ifLate : (item.stage_days || {});
}

function addedDays(item) {
  // Days each stage adds beyond its plan if late, the stages that add some, in process order.
  const days = barDays(item);
  return PROCESS_STAGES.filter((s) => (days[s] ?? 0) > 0).map((s) => [s, days[s]]);
}

function days(value) {
  return Math.abs(value).toFixed(1);
}

function daysBar(item, scale) {
  // One segment per stage that adds days, as long as the days it adds; the stage names and
  // days under it (the largest first), every stage's days on hover.
  const box = document.createElement("div");
  box.className = "stage-days";
  const wrap = document.createElement("div");
  wrap.className = "bar days";
  const added = addedDays(item);
  added.forEach(([s, d]) => {
    const seg = document.createElement("span");
    seg.className = `seg st-${s}`;
    seg.dataset.stage = s;
    seg.dataset.days = d;
    seg.style.width = `${(100 * d) / scale}%`;
    seg.title = t("ui.stage_days.adds", { stage: stageName(s), days: days(d) });
    wrap.append(seg);
  });
  const all = barDays(item);
  wrap.title = PROCESS_STAGES.filter((s) => s in all).map((s) =>
    `${stageName(s)}: ${all[s] >= 0 ? "+" : "−"}${days(all[s])}`).join("\n");
  box.append(wrap);
  const caption = document.createElement("div");
  caption.className = "bar-caption";
  [...added].sort((a, b) => b[1] - a[1]).filter(([, d]) => d >= 0.05).slice(0, 3)
    .forEach(([s, d], i) => {
      const part = document.createElement("span");
      part.dataset.stage = s;
      part.textContent = t("ui.stage_days.adds", { stage: stageName(s), days: days(d) });
      if (i) caption.append(" · ");
      caption.append(part);
    });
  box.append(caption);
  return box;
}

function daysScale(items) {
  return Math.max(1e-9, ...items.map((it) => addedDays(it).reduce((a, [, d]) => a + d, 0)));
}

function dateAfterDue(due, daysLate) {
  // The calendar date daysLate days after the end of the due date (as the server reckons
  // predicted_delivery_date), YYYY-MM-DD.
  const end = Date.parse(`${due}T00:00:00Z`) + DAY_MS;
  return new Date(end + daysLate * DAY_MS).toISOString().slice(0, 10);
}

function lateness(value) {
  if (Math.abs(value) < 0.05) return t("ui.forecast.on_time");
  return t(value > 0 ? "ui.forecast.late" : "ui.forecast.early", { days: days(value) });
}

function forecastCell(item) {
  const box = document.createElement("div");
  box.className = "forecast";
  if (item.predicted_days_late == null) {
    box.classList.add("none");
    box.textContent = t("ui.forecast.none");
    return box;
  }
  const line = document.createElement("div");
  const date = document.createElement("strong");
  date.className = "fc-date";
  date.textContent = item.predicted_delivery_date ?? "";
  const late = document.createElement("span");
  late.className = `fc-late ${item.predicted_days_late > 0 ? "late" : "early"}`;
  late.textContent = lateness(item.predicted_days_late);
  line.append(date, " ", late);
  box.append(line);
  if (item.due_date && item.days_late_p10 != null && item.days_late_p90 != null) {
    const interval = document.createElement("div");
    interval.className = "fc-interval";
    interval.textContent = t("ui.forecast.interval", {
      low: dateAfterDue(item.due_date, item.days_late_p10),
      high: dateAfterDue(item.due_date, item.days_late_p90) });
    box.append(interval);
  }
  if (item.past_due_days > 0) {
    const badge = document.createElement("span");
    badge.className = "badge past-due";
    badge.textContent = t("ui.badge.past_due", { days: days(item.past_due_days) });
    box.append(badge);
  }
  return box;
}

function detailRow(item, colspan) {
  // The order's detail: the forecast with both intervals, every stage's days (ahead of plan
  // too), and the model's signals (stage contributions, log-odds).
  const tr = document.createElement("tr");
  tr.className = "detail";
  tr.dataset.detailOf = item.order_id;
  const td = document.createElement("td");
  td.colSpan = colspan;
  if (item.predicted_days_late != null) {
    const p = document.createElement("p");
    p.className = "detail-forecast";
    p.textContent = t("ui.detail.forecast", {
      late: lateness(item.predicted_days_late),
      p10: item.days_late_p10.toFixed(1), p90: item.days_late_p90.toFixed(1),
      p025: item.days_late_p025.toFixed(1), p975: item.days_late_p975.toFixed(1) });
    td.append(p);
    const h = document.createElement("h4");
    h.textContent = t("ui.detail.stage_days");
    const ul = document.createElement("ul");
    ul.className = "detail-stage-days";
    PROCESS_STAGES.filter((s) => s in (item.stage_days || {})).forEach((s) => {
      const li = document.createElement("li");
      li.dataset.stage = s;
      li.innerHTML = `<i class="sw st-${s}"></i>`;
      const v = item.stage_days[s];
      li.append(`${stageName(s)}: ${v >= 0 ? "+" : "−"}${days(v)}`);
      ul.append(li);
    });
    td.append(h, ul);
  }
  const h = document.createElement("h4");
  h.textContent = t("ui.detail.signals");
  td.append(h, signalsBar(item, signalsScale([item])));
  td.append(whatIfSection(item));  // whatif.js
  tr.append(td);
  return tr;
}

function toggleDetail(tr, item) {
  const next = tr.nextElementSibling;
  if (next && next.classList.contains("detail")) {
    next.remove();
    tr.classList.remove("open");
    return;
  }
  tr.after(detailRow(item, tr.children.length));
  tr.classList.add("open");
}

function handledCell(item) {
  // An acknowledgement in force: who, until when, the note, and "withdraw"; else "mark
  // handled", which opens a small form (a note, until a date and/or a rise of risk).
  const box = document.createElement("div");
  box.className = "handled";
  const ack = item.acknowledgement;
  if (ack && ack.state === "in_force") {
    const line = document.createElement("div");
    line.className = "ack-by";
    const until = [ack.until ? t("ui.ack.until_date", { until: ack.until }) : "",
      ack.until_risk_rises_by != null ? t("ui.ack.until_rise", {
        step: (100 * ack.until_risk_rises_by).toFixed(0) }) : ""].filter(Boolean).join(", ");
    line.textContent = t("ui.ack.by", { by: ack.created_by, owner: ack.owner ?? "", until });
    box.append(line);
    if (ack.note) {
      const note = document.createElement("div");
      note.className = "ack-note";
      note.textContent = ack.note;
      box.append(note);
    }
    const withdraw = document.createElement("button");
    withdraw.type = "button";
    withdraw.className = "link ack-withdraw";
    withdraw.textContent = t("ui.ack.withdraw");
    withdraw.addEventListener("click", () => sendAck(item, "DELETE"));
    box.append(withdraw);
    return box;
  }
  if (ack && ack.state === "lapsed") {
    const badge = document.createElement("span");
    badge.className = "badge ack-lapsed";
    badge.textContent = t(`ui.ack.lapsed.${ack.lapsed}`);
    box.append(badge);
  }
  const mark = document.createElement("button");
  mark.type = "button";
  mark.className = "secondary ack-mark";
  mark.textContent = t("ui.ack.mark");
  mark.addEventListener("click", () => {
    mark.hidden = true;
    box.append(ackForm(item));
  });
  box.append(mark);
  return box;
}

function ackForm(item) {
  const form = document.createElement("form");
  form.className = "ack-form";
  const field = (label, input) => {
    const l = document.createElement("label");
    const span = document.createElement("span");
    span.textContent = t(label);
    l.append(span, input);
    form.append(l);
    return input;
  };
  const note = field("ui.ack.note", Object.assign(document.createElement("input"),
    { name: "note", maxLength: 2000 }));
  const until = field("ui.ack.until", Object.assign(document.createElement("input"),
    { name: "until", type: "date" }));
  const step = field("ui.ack.step", Object.assign(document.createElement("input"),
    { name: "until_risk_rises_by", type: "number", min: 1, max: 100, step: 1, value: 10 }));
  const save = Object.assign(document.createElement("button"), { type: "submit",
    className: "ack-save", textContent: t("ui.ack.save") });
  form.append(save);
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const body = { note: note.value.trim() };
    if (until.value) body.until = until.value;
    if (step.value) body.until_risk_rises_by = Number(step.value) / 100;
    sendAck(item, "POST", body);
  });
  return form;
}

async function sendAck(item, method, body) {
  showError("");
  try {
    await api(`/v1/orders/${encodeURIComponent(item.order_id)}/ack?lang=${state.lang}`, method,
      body);
    await load();
  } catch (e) {
    showError(e.message);
  }
}

function riskCell(risk) {
  const span = document.createElement("span");
  span.className = `risk ${risk >= 0.7 ? "high" : risk >= 0.4 ? "mid" : "low"}`;
  span.textContent = `${(risk * 100).toFixed(0)}%`;
  return span;
}

function cell(tr, content, cls, label) {
  const td = document.createElement("td");
  if (cls) td.className = cls;
  if (label) td.dataset.label = t(label);
  if (content instanceof Node) td.append(content);
  else td.textContent = content ?? "";
  tr.append(td);
  return td;
}

function render(page) {
  const tbody = $("orders").querySelector("tbody");
  tbody.replaceChildren();
  const items = page.items || [];
  state.page = page;
  // A run of a model without a forecast has no days to draw: its signals are the bar then.
  state.hasForecast = items.length === 0 || items.some((it) => it.predicted_days_late != null);
  $("col-bar").textContent = t(state.hasForecast ? "ui.col.stage_days" : "ui.col.signals");
  drawLegend();
  // One scale for the page so bars compare across orders.
  const scale = state.hasForecast ? daysScale(items) : signalsScale(items);
  const plants = new Set();
  const customers = new Set();
  const owners = new Set();
  items.forEach((it) => {
    const tr = document.createElement("tr");
    tr.className = "order-row";
    tr.dataset.orderId = it.order_id;
    tr.dataset.risk = it.risk;
    cell(tr, it.rank, "num rank", "ui.col.rank");
    const open = document.createElement("button");
    open.type = "button";
    open.className = "link order-open";
    open.textContent = it.order_id;
    open.title = t("ui.detail.show");
    open.addEventListener("click", () => toggleDetail(tr, it));
    cell(tr, open, "order", "ui.col.order");
    cell(tr, riskCell(it.risk), "num", "ui.col.risk");
    cell(tr, forecastCell(it), "delivery", "ui.col.delivery");
    cell(tr, state.hasForecast ? daysBar(it, scale) : signalsBar(it, scale), "bars",
      state.hasForecast ? "ui.col.stage_days" : "ui.col.signals");
    cell(tr, stageName(it.top_stage), `top-stage st-text-${it.top_stage}`, "ui.col.top_stage");
    cell(tr, it.owner, "owner", "ui.col.owner");
    cell(tr, handledCell(it), "handled-cell", "ui.col.handled");
    const ul = document.createElement("ul");
    ul.className = "reasons";
    (it.reasons || []).forEach((r) => {
      const li = document.createElement("li");
      li.textContent = r;
      ul.append(li);
    });
    cell(tr, ul, "reasons-cell", "ui.col.reasons");
    cell(tr, it.plant_id, "plant", "ui.col.plant");
    cell(tr, it.customer_id, "customer", "ui.col.customer");
    cell(tr, it.due_date, "due", "ui.col.due");
    cell(tr, it.days_to_due, "num days-to-due", "ui.col.days_to_due");
    tbody.append(tr);
    if (it.plant_id) plants.add(it.plant_id);
    if (it.customer_id) customers.add(it.customer_id);
    if (it.owner) owners.add(it.owner);
  });
  fillList("plants", plants);
  fillList("customers", customers);
  fillList("owners", owners);
  $("empty").hidden = items.length > 0;
  const run = page.run || {};
  $("meta-model").textContent = t("ui.meta.model", { version: page.model_version });
  $("meta-scored").textContent = t("ui.meta.scored", {
    scored_at: fmtTime(run.created_at), as_of: fmtTime(run.as_of) });
  $("meta-count").textContent = t("ui.meta.count", { shown: items.length, total: page.total });
  state.total = page.total;
  $("prev").disabled = state.offset <= 0;
  $("next").disabled = state.offset + PAGE_SIZE >= page.total;
}

function fillList(id, values) {
  const list = $(id);
  const known = new Set([...list.options].map((o) => o.value));
  [...values].sort().forEach((v) => { if (!known.has(v)) list.append(new Option(v)); });
}

function fmtTime(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString(state.lang === "zh" ? "zh-CN" : "en-GB",
    { dateStyle: "medium", timeStyle: "short" });
}

async function load() {
  showError("");
  const p = filters();
  p.set("limit", PAGE_SIZE);
  p.set("offset", state.offset);
  document.body.classList.add("loading");
  try {
    const r = await api(`/v1/orders/at-risk?${p}`);
    render(await r.json());
  } catch (e) {
    showError(e.message);
  } finally {
    document.body.classList.remove("loading");
  }
}

async function exportView(format) {
  showError("");
  const p = filters();
  p.set("format", format);
  try {
    const r = await api(`/v1/orders/at-risk/export?${p}`);
    const blob = await r.blob();
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    // The file keeps the name the server gives it (model run time included).
    const named = /filename="([^"]+)"/.exec(r.headers.get("Content-Disposition") || "");
    a.download = named ? named[1] : `otd-risk-at-risk.${format}`;
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
  $("key-forget").hidden = true;
  $("api-key").focus();
}

function showMain() {
  $("key-panel").hidden = true;
  $("main").hidden = false;
  $("key-forget").hidden = false;
}

function bind() {
  $("key-form").addEventListener("submit", (e) => {
    e.preventDefault();
    sessionStorage.setItem(KEY, $("api-key").value.trim());
    $("api-key").value = "";
    showMain();
    load();
  });
  $("key-forget").addEventListener("click", () => {
    sessionStorage.removeItem(KEY);
    showKeyPanel();
  });
  $("filters").addEventListener("submit", (e) => {
    e.preventDefault();
    state.offset = 0;
    load();
  });
  $("clear").addEventListener("click", () => {
    $("filters").reset();
    state.offset = 0;
    load();
  });
  $("prev").addEventListener("click", () => {
    state.offset = Math.max(0, state.offset - PAGE_SIZE);
    load();
  });
  $("next").addEventListener("click", () => {
    state.offset += PAGE_SIZE;
    load();
  });
  $("export-csv").addEventListener("click", () => exportView("csv"));
  $("export-xlsx").addEventListener("click", () => exportView("xlsx"));
  document.querySelectorAll("[data-lang]").forEach((b) => {
    b.addEventListener("click", async () => {
      await loadMessages(b.dataset.lang);
      if (sessionStorage.getItem(KEY)) load();
    });
  });
}

function filtersFromUrl() {
  // The board's figures link here with the list's filters as query parameters (the API's
  // names and values: min_risk 0-1): each one fills the filter of that name.
  new URLSearchParams(location.search).forEach((value, name) => {
    const input = $("filters").elements.namedItem(name);
    if (!input || !("value" in input)) return;
    input.value = name === "min_risk" ? String(Math.round(Number(value) * 100)) : value;
  });
}

async function start() {
  bind();
  await loadMessages(initialLang());
  filtersFromUrl();
  if (sessionStorage.getItem(KEY)) {
    showMain();
    load();
  } else {
    showKeyPanel();
  }
}

start();
