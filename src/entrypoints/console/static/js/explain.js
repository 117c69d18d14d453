// "Explain this charge": the chain of one usage event (GET …/usage/events/{event_id}) as an expandable
// panel under a usage feed entry: event → price → debit → grants drawn → hold → invoice line → refunds. Fetched when the
// panel is first opened (a <details>, so it opens with the keyboard), never before.
import { api, orgPath } from "./api.js";
import { dateTime, h, money, shortId, shown } from "./ui.js";

function projectLabel(id) {
  return id ? `Project ${shortId(id)}` : "Organization-wide";
}

function eventText(event, price) {
  const product = event.product_name ? `${event.product_name} (${event.product})` : event.product_id;
  const unit = price.unit ? ` ${price.unit}` : "";
  const refund = event.refund_of ? `, the refund row of event ${event.refund_of}` : "";
  return `${event.event_id}: ${event.quantity.toLocaleString("en-US")}${unit} of ${product}, ${projectLabel(event.project_id)}`
    + `; occurred ${dateTime(event.occurred_at)}, recorded ${dateTime(event.recorded_at)}${refund}`;
}

function priceText(event, price) {
  const unit = price.unit ? ` per ${price.unit}` : "";
  const base = `${event.quantity.toLocaleString("en-US")} × ${shown(price.unit_price)}${unit} = ${shown(price.priced)}`;
  if (Number(price.uncharged.micros) === 0) return `${base}, charged ${shown(price.amount)}`;
  return `${base}, charged ${shown(price.amount)} (${shown(price.uncharged)} above the hold left uncharged)`;
}

function debitText(debit) {
  if (!debit) return "No charge of its own.";
  return `${shown(debit.amount)} taken off the credit balance ${dateTime(debit.created_at)} `
    + `(ledger key ${debit.idempotency_key}); balance after: ${shown(debit.balance_after)}`;
}

const SOURCES = { purchase: "purchased credits", pack: "credit pack", auto_recharge: "auto-recharge",
  promotion: "promotional credits", trial: "trial credits", refund: "refunded credits" };

function grantsText(grants, creditLine) {
  const drawn = (grants || []).map((g) => `${shown(g.amount)} from ${SOURCES[g.source] || g.source} (grant ${shortId(g.grant_id)})`);
  if (creditLine && Number(creditLine.micros) > 0) drawn.push(`${shown(creditLine)} on the credit line`);
  return drawn.length ? drawn.join(" · ") : "Nothing drawn.";
}

const RULES = { reject: "reject", cap_at_hold: "cap at the hold", allow_within_credit_line: "allow within the credit line" };

function holdText(hold) {
  if (!hold) return "None: reported as a plain usage event.";
  const rule = hold.overrun_rule ? `; settled above the hold, rule “${RULES[hold.overrun_rule] || hold.overrun_rule}”` : "";
  const denied = hold.overrun_denied_reason ? ` (overrun refused: ${hold.overrun_denied_reason})` : "";
  return `Hold ${shortId(hold.hold_id)} (${hold.status}) reserved ${shown(hold.held)}; charged ${shown(hold.charged)}`
    + `${Number(hold.uncharged.micros) ? `, left ${shown(hold.uncharged)} uncharged` : ""}${rule}${denied}`;
}

function invoiceText(line) {
  if (!line) return "Not invoiced yet: it goes on the invoice of its period when the period closes.";
  const number = line.number ? `Invoice ${line.number}` : `Invoice ${shortId(line.invoice_id)}`;
  return `${number} (${line.status}), ${dateTime(line.period_start)} – ${dateTime(line.period_end)}: `
    + `${line.product_name}, ${projectLabel(line.project_id)}, ${line.quantity.toLocaleString("en-US")} ${line.unit}, `
    + `${shown(line.usage)} of usage billed as ${money(line.amount)}`;
}

function refundsText(refunds) {
  if (!refunds.length) return "None.";
  return refunds.map((r) => `${shown(r.amount)} given back ${dateTime(r.created_at)}`
    + `${r.reason ? ` (${r.reason})` : ""}; balance after: ${shown(r.balance_after)}`).join(" · ");
}

/** The chain as a definition list; each value carries `data-link` for its step. */
export function chainList(chain) {
  const steps = [
    ["event", "Event", eventText(chain.event, chain.price)],
    ["price", "Price", priceText(chain.event, chain.price)],
    ["debit", "Debit", debitText(chain.debit)],
    ["grants", "Paid from", grantsText(chain.grants, chain.credit_line)],
    ["hold", "Hold", holdText(chain.hold)],
    ["invoice", "Invoice line", invoiceText(chain.invoice_line)],
    ["refunds", "Refunds", refundsText(chain.refunds || [])],
  ];
  return h("dl", { class: "summary explain-chain" },
    steps.flatMap(([key, label, text]) => [h("dt", {}, label), h("dd", { "data-link": key }, text)]));
}

/** A closed <details> that loads and shows the chain of `eventId` when first opened. */
export function explainPanel(eventId) {
  const body = h("div", { class: "explain-body", "aria-live": "polite" }, "Loading…");
  const panel = h("details", { class: "explain", "data-event": eventId },
    h("summary", {}, "Explain this charge"), body);
  let loaded = false;
  panel.addEventListener("toggle", async () => {
    if (!panel.open || loaded) return;
    loaded = true;
    try {
      const chain = await api(orgPath(`/usage/events/${encodeURIComponent(eventId)}`));
      body.replaceChildren(chainList(chain));
    } catch (error) {
      loaded = false;
      body.replaceChildren(h("p", { role: "alert", class: "alert" }, error.message));
    }
  });
  return panel;
}
