// The Usage tab: the usage report of seed 004's GET /billing/usage ("to build cost forecasts and chargeback
// reports") as a chart per day (hour by hour on zoom) by product or project, totals as the invoice rounds
// them, a forecast to the end of the period, a CSV export; below it, the usage feed.
import { api, listItems, orgPath } from "../api.js";
import { barChart, PALETTE, swatch } from "../chart.js";
import { explainPanel } from "../explain.js";
import { currentSession } from "../session.js";
import { $, busy, credits, dateTime, fillRows, h, money, shortId, showError, shown } from "../ui.js";

const DAY = 86_400_000;
const HOUR = 3_600_000;

let report = null;
let zoomDay = null;

// ---------------------------------------------------------------- the report

function projectLabel(id) {
  return id ? `Project ${shortId(id)}` : "Organization-wide";
}

function groupOf(line, group) {
  return group === "project" ? { key: line.project_id || "org", label: projectLabel(line.project_id) }
    : { key: line.product, label: line.product_name || line.product };
}

function isoDay(ms) {
  return new Date(ms).toISOString().slice(0, 10);
}

async function fetchReport(fromMs, toMs) {
  const session = currentSession();
  return api("/billing/usage", { query: {
    organization_id: session.organizationId,
    from: fromMs === undefined ? undefined : new Date(fromMs).toISOString().replace(".000Z", "Z"),
    to: toMs === undefined ? undefined : new Date(toMs).toISOString().replace(".000Z", "Z"),
  } });
}

function seriesOf(lines, group) {
  const seen = new Map();
  for (const line of lines) {
    const g = groupOf(line, group);
    if (!seen.has(g.key)) seen.set(g.key, g.label);
  }
  return [...seen.entries()].sort((a, b) => a[1].localeCompare(b[1]))
    .map(([key, label], i) => ({ key, label, colour: PALETTE[i % PALETTE.length] }));
}

function buckets(lines, group, fromMs, toMs, size) {
  const out = [];
  for (let t = fromMs; t < toMs; t += size) {
    const d = new Date(t);
    const label = size === DAY ? d.toISOString().slice(0, 10) : `${d.toISOString().slice(0, 13)}:00 UTC`;
    const short = size === DAY ? d.toISOString().slice(5, 10) : d.toISOString().slice(11, 13);
    out.push({ key: size === DAY ? isoDay(t) : d.toISOString(), start: t, label, short, values: {} });
  }
  for (const line of lines) {
    const index = Math.floor((Date.parse(line.hour) - fromMs) / size);
    const bucket = out[index];
    if (!bucket) continue;
    const key = groupOf(line, group).key;
    bucket.values[key] = (bucket.values[key] || 0) + Number(line.amount_micros);
  }
  return out;
}

function drawChart() {
  const group = $("#report-group").value;
  const lines = listItems(report.lines);
  const series = seriesOf(lines, group);
  const fromMs = Date.parse(report.from);
  const toMs = Date.parse(report.to);
  const hourly = zoomDay !== null;
  const start = hourly ? zoomDay : fromMs;
  const end = hourly ? Math.min(zoomDay + DAY, toMs) : toMs;
  const data = buckets(lines, group, start, end, hourly ? HOUR : DAY);
  $("#chart-title").textContent = hourly ? `Cost per hour on ${isoDay(zoomDay)} (UTC)` : "Cost per day";
  $("#zoom-out").hidden = !hourly;
  $("#chart-hint").hidden = hourly;
  barChart($("#usage-chart"), {
    buckets: data, series, format: (micros) => credits(micros),
    describe: `${$("#chart-title").textContent} by ${group}`,
    onSelect: hourly ? null : (bucket) => {
      zoomDay = bucket.start;
      drawChart();
      $("#zoom-out").focus();
    },
  });
  $("#usage-chart").dataset.granularity = hourly ? "hour" : "day";
  $("#chart-legend").replaceChildren(...series.map((s) => h("li", { "data-series": s.key }, swatch(s.colour), s.label)));
}

/** Totals by product or project from the report's invoice items: each item rounded to cents once, as an
 * invoice line is, so the rows add up to the invoice total exactly. */
function drawTotals() {
  const group = $("#report-group").value;
  const currency = report.currency_iso || "USD";
  const rows = new Map();
  for (const item of listItems(report.items)) {
    const g = groupOf(item, group);
    const row = rows.get(g.key) || { label: g.label, quantity: 0, micros: 0, cents: 0 };
    row.quantity += Number(item.quantity);
    row.micros += Number(item.amount_micros);
    row.cents += Number(item.amount.cents);
    rows.set(g.key, row);
  }
  $("#totals-group").textContent = group === "project" ? "Project" : "Product";
  const sorted = [...rows.values()].sort((a, b) => a.label.localeCompare(b.label));
  fillRows($("#usage-totals"), sorted.map((r) => h("tr", {},
    h("th", { scope: "row" }, r.label),
    h("td", { class: "num" }, group === "project" ? "—" : r.quantity.toLocaleString("en-US")),
    h("td", { class: "num" }, credits(r.micros)),
    h("td", { class: "num" }, money({ cents: r.cents, currency_iso: currency })))), "No usage in this window.");
  $("#report-usage-total").textContent = credits(report.total_micros || 0);
  const invoiceTotal = report.invoice_total || report.total;
  $("#report-invoice-total").textContent = money(invoiceTotal);
}

async function showReport(fromMs, toMs) {
  report = await fetchReport(fromMs, toMs);
  zoomDay = null;
  drawChart();
  drawTotals();
  $("#export-csv").disabled = false;
}

// ---------------------------------------------------------------- forecast and CSV

/** This period so far (the API's default window: the month's start to the end of this hour), and the
 * period's end at the same hourly rate. */
async function showForecast() {
  const current = await fetchReport();
  const from = Date.parse(current.from);
  const to = Date.parse(current.to);
  const start = new Date(from);
  const periodEnd = Date.UTC(start.getUTCFullYear(), start.getUTCMonth() + 1, 1);
  const elapsed = Math.max(1, (to - from) / HOUR);
  const remaining = Math.max(0, (periodEnd - to) / HOUR);
  const soFar = Number(current.total_micros || 0);
  const forecast = Math.round(soFar + (soFar / elapsed) * remaining);
  const forecastEl = $("#forecast");
  forecastEl.dataset.soFar = String(soFar);
  forecastEl.dataset.forecast = String(forecast);
  forecastEl.textContent = `This period so far: ${credits(soFar)}. Forecast to the end of the period `
    + `(${dateTime(new Date(periodEnd).toISOString())}) at the current rate: ${credits(forecast)}.`;
  return current;
}

function csvField(value) {
  const text = value === null || value === undefined ? "" : String(value);
  return /[",\n\r]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

/** Chargeback CSV: one row per project and product, amounts rounded as the invoice rounds them. */
export function chargebackCsv(data) {
  const units = new Map(listItems(data.by_product).map((p) => [p.product, p.unit]));
  const header = ["from", "to", "project_id", "product", "product_name", "quantity", "unit", "usage_micros",
    "amount", "currency"];
  const rows = listItems(data.items).map((item) => [
    data.from, data.to, item.project_id || "", item.product, item.product_name, item.quantity,
    units.get(item.product) || "", item.amount_micros, (Number(item.amount.cents) / 100).toFixed(2),
    item.amount.currency_iso]);
  const total = data.invoice_total || data.total;
  rows.push([data.from, data.to, "", "TOTAL", "", "", "", data.total_micros, (Number(total.cents) / 100).toFixed(2),
    total.currency_iso]);
  return [header, ...rows].map((r) => r.map(csvField).join(",")).join("\r\n") + "\r\n";
}

function exportCsv() {
  const blob = new Blob([chargebackCsv(report)], { type: "text/csv" });
  const url = URL.createObjectURL(blob);
  const link = h("a", { href: url, download: `usage-${report.from.slice(0, 10)}-to-${report.to.slice(0, 10)}.csv` });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

// ---------------------------------------------------------------- the feed

let rows = [];
let cursor = null;

const EXPLAINED_KINDS = new Set(["usage", "automatic_refund"]);

const SR_TONE = { credit: "Refund ", deposit: "Added ", settlement: "Moved to invoice " };

function row(entry) {
  const tone = entry.tone || (entry.sign === "+" ? "deposit" : "charge");
  const label = entry.description;
  const purpose = entry.purpose && entry.purpose !== label ? h("span", { class: "feed-purpose" }, entry.purpose) : null;
  // The reason shows on hover (title) and on a keyboard-operable expand (<details>).
  const details = [entry.reason ? `Reason: ${entry.reason}` : null, entry.reverses ? `Reverses: ${entry.reverses}` : null]
    .filter(Boolean);
  const what = details.length
    ? h("details", { class: "feed-reason", title: entry.reason || entry.reverses },
      h("summary", {}, label), ...details.map((d) => h("p", {}, d)))
    : label;
  // A usage charge, and a refund of one, name their event: its chain opens below the entry.
  const explain = EXPLAINED_KINDS.has(entry.kind) && entry.reference ? explainPanel(entry.reference) : null;
  return h("tr", { class: tone, "data-kind": entry.kind },
    h("td", {}, h("time", { datetime: entry.created_at }, dateTime(entry.created_at))),
    h("td", {}, what, purpose, explain),
    h("td", { class: `num amount ${tone}` }, SR_TONE[tone] ? h("span", { class: "visually-hidden" }, SR_TONE[tone]) : null,
      entry.amount_display),
    h("td", { class: "num" }, shown(entry.balance_after)));
}

async function more() {
  const page = await api(orgPath("/usage_feed"), { query: { limit: 25, cursor } });
  rows.push(...listItems(page).map(row));
  cursor = page.next_cursor || null;
  fillRows($("#usage-feed"), rows, "No usage yet.");
  $("#more").hidden = !cursor;
}

// ---------------------------------------------------------------- the page

function windowFromForm() {
  const from = Date.parse(`${$("#report-from").value}T00:00:00Z`);
  const to = Date.parse(`${$("#report-to").value}T00:00:00Z`) + DAY;
  return { from, to };
}

export async function render() {
  rows = [];
  const [overview, current] = await Promise.all([api(orgPath("/billing/overview")), showForecast(), more()]);
  $("#feed-balance").textContent = shown(overview.credit_balance);
  $("#more").addEventListener("click", (event) => busy(event.currentTarget, more));

  // The first window is the current period, whole days.
  const from = Date.parse(current.from);
  const lastDay = Date.parse(current.to) - 1;
  $("#report-from").value = isoDay(from);
  $("#report-to").value = isoDay(lastDay);
  await showReport(Date.parse(`${isoDay(from)}T00:00:00Z`), Date.parse(`${isoDay(lastDay)}T00:00:00Z`) + DAY);

  const form = $("#report-form");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const { from: start, to: end } = windowFromForm();
    if (!Number.isFinite(start) || !Number.isFinite(end) || end <= start) {
      showError(new Error("Choose a From date on or before the To date."), form);
      return;
    }
    await busy(form.querySelector("button[type=submit]"), () => showReport(start, end), form);
  });
  $("#report-group").addEventListener("change", () => { drawChart(); drawTotals(); });
  $("#zoom-out").addEventListener("click", () => { zoomDay = null; drawChart(); });
  $("#export-csv").addEventListener("click", exportCsv);
}
