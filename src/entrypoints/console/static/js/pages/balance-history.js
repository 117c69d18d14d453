import { api, listItems, orgPath } from "../api.js";
import { $, busy, dateTime, fillRows, h, shortId } from "../ui.js";

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

export async function render() {
  rows = [];
  await more();
  $("#more").addEventListener("click", (event) => busy(event.currentTarget, more));
}
