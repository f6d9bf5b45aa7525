// What would help one order, in its detail row: the standard levers the server tried
// (GET /v1/orders/{id}/levers, the most helpful first) and a "try a change" form
// (POST /v1/orders/{id}/what-if) whose answer is shown beside the current state. Uses app.js's
// t(), api(), stageName() and days(); loaded after it.
"use strict";

const CHANGE_KINDS = ["po_received", "production_started", "stage_finished", "ship_faster",
  "due_date_moved"];

function whatIfSection(item) {
  const box = document.createElement("div");
  box.className = "whatif";
  const h = document.createElement("h4");
  h.textContent = t("ui.whatif.help");
  const levers = document.createElement("div");
  levers.className = "whatif-levers";
  levers.textContent = t("ui.whatif.loading");
  const h2 = document.createElement("h4");
  h2.textContent = t("ui.whatif.try");
  const answer = document.createElement("div");
  answer.className = "whatif-answer";
  box.append(h, levers, h2, changeForm(item, answer, []), answer);
  loadLevers(item, levers, box, answer);
  return box;
}

async function loadLevers(item, el, box, answer) {
  try {
    const r = await api(`/v1/orders/${encodeURIComponent(item.order_id)}/levers?lang=${state.lang}`);
    const body = await r.json();
    el.textContent = "";
    const best = document.createElement("p");
    best.className = "whatif-best";
    best.textContent = body.best ? t("ui.whatif.best", { summary: body.best.summary })
      : t("ui.whatif.none");
    const ul = document.createElement("ul");
    body.levers.forEach((lv) => {
      const li = document.createElement("li");
      li.dataset.lever = lv.lever;
      li.textContent = lv.summary + lateChange(lv.days_late_change);
      ul.append(li);
    });
    el.append(best, ul);
    // The form's purchase-order list: the order's open ones.
    const form = box.querySelector("form.whatif-form");
    form.replaceWith(changeForm(item, answer, body.open_purchase_orders));
  } catch (e) {
    el.textContent = e.message;
  }
}

function lateChange(change) {
  if (change == null || Math.abs(change) < 0.05) return "";
  return ` (${t("ui.whatif.days_change", { days: `${change > 0 ? "+" : "−"}${days(change)}` })})`;
}

function changeForm(item, answer, pos) {
  const form = document.createElement("form");
  form.className = "whatif-form";
  const input = (name, type, extra = {}) => {
    const l = document.createElement("label");
    l.dataset.field = name;
    const span = document.createElement("span");
    span.textContent = t(`ui.whatif.field.${name}`);
    const el = Object.assign(document.createElement(type === "select" ? "select" : "input"),
      { name, ...(type === "select" ? {} : { type }), ...extra });
    l.append(span, el);
    form.append(l);
    return el;
  };
  const kind = input("kind", "select");
  CHANGE_KINDS.forEach((k) => kind.append(new Option(t(`ui.whatif.kind.${k}`), k)));
  const po = input("po_id", "select");
  pos.forEach((p) => po.append(new Option(`${p.po_id} (${p.supplier_id}, ${p.promised_date})`,
    p.po_id)));
  const stage = input("stage", "select");
  PROCESS_STAGES.forEach((s) => stage.append(new Option(stageName(s), s)));
  const date = input("date", "date", { required: true });
  const shipDays = input("days", "number", { min: 1, max: 60, step: 1, value: 2 });
  const used = { po_received: ["po_id", "date"], production_started: ["date"],
    stage_finished: ["stage", "date"], ship_faster: ["days"], due_date_moved: ["date"] };
  const show = () => {
    form.querySelectorAll("label[data-field]").forEach((l) => {
      const f = l.dataset.field;
      l.hidden = f !== "kind" && !used[kind.value].includes(f);
      l.querySelector("input,select").disabled = l.hidden;
    });
  };
  kind.addEventListener("change", show);
  show();
  form.append(Object.assign(document.createElement("button"), { type: "submit",
    className: "whatif-submit", textContent: t("ui.whatif.submit") }));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const change = { kind: kind.value };
    if (used[kind.value].includes("po_id")) change.po_id = po.value;
    if (used[kind.value].includes("stage")) change.stage = stage.value;
    if (used[kind.value].includes("date")) change.date = date.value;
    if (used[kind.value].includes("days")) change.days = Number(shipDays.value);
    answer.textContent = t("ui.whatif.loading");
    try {
      const r = await api(`/v1/orders/${encodeURIComponent(item.order_id)}/what-if?lang=${state.lang}`,
        "POST", { changes: [change] });
      showAnswer(answer, await r.json());
    } catch (err) {
      answer.textContent = err.message;
    }
  });
  return form;
}

function showAnswer(el, body) {
  el.textContent = "";
  const { current, after } = body;
  const p = document.createElement("p");
  p.className = "whatif-risk";
  p.textContent = t("ui.whatif.risk", { before: `${(current.risk * 100).toFixed(0)}%`,
    after: `${(after.risk * 100).toFixed(0)}%` }) + lateChange(body.days_late_change);
  const stage = document.createElement("p");
  stage.textContent = t("ui.whatif.top_stage", { stage: stageName(after.top_stage),
    owner: after.owner ?? "" });
  if (after.predicted_delivery_date) {
    stage.textContent += " · " + t("ui.whatif.delivery", { date: after.predicted_delivery_date });
  }
  const ul = document.createElement("ul");
  after.reasons.forEach((r) => {
    const li = document.createElement("li");
    li.textContent = r;
    ul.append(li);
  });
  el.append(p, stage, ul);
}
