import { api, listItems, orgPath } from "../api.js";
import { $, busy, dateTime, fillRows, h, shown } from "../ui.js";

let rows = [];
let cursor = null;

function row(entry) {
  const credit = entry.tone === "credit";
  const amount = entry.amount_display;
  const label = entry.description;
  // The reason shows on hover (title) and on a keyboard-operable expand (<details>).
  const what = entry.reason
    ? h("details", { class: "feed-reason", title: entry.reason },
      h("summary", {}, label), h("p", {}, `Reason: ${entry.reason}`))
    : label;
  return h("tr", { class: credit ? "credit" : "charge", "data-kind": entry.kind },
    h("td", {}, h("time", { datetime: entry.created_at }, dateTime(entry.created_at))),
    h("td", {}, what),
    h("td", { class: `num amount ${credit ? "credit" : "charge"}` },
      credit ? h("span", { class: "visually-hidden" }, "Credit ") : null, amount),
    h("td", { class: "num" }, shown(entry.balance_after)));
}

async function more() {
  const page = await api(orgPath("/usage_feed"), { query: { limit: 25, cursor } });
  rows.push(...listItems(page).map(row));
  cursor = page.next_cursor || null;
  fillRows($("#usage-feed"), rows, "No usage yet.");
  $("#more").hidden = !cursor;
}

export async function render() {
  rows = [];
  const [overview] = await Promise.all([api(orgPath("/billing/overview")), more()]);
  $("#feed-balance").textContent = shown(overview.credit_balance);
  $("#more").addEventListener("click", (event) => busy(event.currentTarget, more));
}
