import { api, listItems, orgPath } from "../api.js";
import { $, busy, dateTime, fillRows, h, shortId, shown } from "../ui.js";

let rows = [];
let cursor = null;

function row(entry) {
  const amount = entry.amount_micros;
  return h("tr", {},
    h("td", { class: "mono", title: entry.id }, shortId(entry.id)),
    h("td", {}, entry.description, entry.reason ? h("div", { class: "hint" }, entry.reason) : null),
    h("td", {}, h("time", { datetime: entry.created_at }, dateTime(entry.created_at))),
    h("td", { class: `num amount ${amount > 0 ? "credit" : "charge"}` }, entry.amount_display));
}

async function more() {
  const page = await api(orgPath("/balance_history"), { query: { limit: 25, cursor } });
  rows.push(...listItems(page).map(row));
  cursor = page.next_cursor || null;
  fillRows($("#balance-history"), rows, "No balance transactions yet.");
  $("#more").hidden = !cursor;
}

const SOURCES = {
  purchase: "Purchase", pack: "Credit pack", auto_recharge: "Auto-recharge", promotion: "Promotion",
  trial: "Free trial", refund: "Refund", plan: "Plan credits", adjustment: "Adjustment",
};
const STATUS_BADGE = { active: "green", used: "off", expired: "yellow", expired_pending: "yellow" };

function grantRow(grant) {
  return h("tr", { "data-status": grant.status },
    h("td", { class: "mono", title: grant.id }, shortId(grant.id)),
    h("td", {}, SOURCES[grant.source] || grant.source),
    h("td", {}, h("time", { datetime: grant.created_at }, dateTime(grant.created_at))),
    h("td", {}, grant.expires_at ? h("time", { datetime: grant.expires_at }, dateTime(grant.expires_at)) : "Never"),
    h("td", { class: "num" }, shown(grant.amount)),
    h("td", { class: "num" }, shown(grant.remaining)),
    h("td", {}, h("span", { class: `badge ${STATUS_BADGE[grant.status] || "off"}` }, grant.status)));
}

async function grants() {
  const listed = await api(orgPath("/credits/grants"));
  fillRows($("#grants"), listItems(listed).map(grantRow), "No credit grants yet.");
}

export async function render() {
  rows = [];
  await Promise.all([more(), grants()]);
  $("#more").addEventListener("click", (event) => busy(event.currentTarget, more));
}
