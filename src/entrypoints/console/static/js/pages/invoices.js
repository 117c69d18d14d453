import { api, download, listAll, orgPath } from "../api.js";
import { renderBanners } from "../banners.js";
import { REQUEST_REFUND, can, reason } from "../permissions.js";
import { $, busy, date, fillRows, h, money, notify, safeUrl, showError } from "../ui.js";

function invoiceLabel(invoice) {
  return invoice.number || String(invoice.id).slice(0, 8);
}

function pdfButton(invoice) {
  if (!invoice.pdf_available) return h("span", { class: "muted" }, "PDF pending");
  const label = invoiceLabel(invoice);
  const button = h("button", { type: "button", class: "button", "aria-label": `Download PDF of invoice ${label}` }, "PDF");
  button.addEventListener("click", () => busy(button, async () => {
    const name = await download(orgPath("/invoices/download"), {
      query: { invoice_id: invoice.id }, fallbackName: `invoice-${label}.pdf`,
    });
    notify(`Downloaded ${name}.`);
  }));
  return button;
}

function payLink(invoice) {
  const href = invoice.hosted_invoice_url && safeUrl(invoice.hosted_invoice_url);
  if (!href) return null;
  return h("a", {
    class: "button", href, rel: "noopener noreferrer", target: "_blank",
    "aria-label": `Pay invoice ${invoiceLabel(invoice)} (opens the hosted invoice)`,
  }, "Pay");
}

function dueRow(invoice) {
  return h("tr", {},
    h("td", {}, date(invoice.invoice_date)),
    h("td", { class: "mono" }, invoiceLabel(invoice)),
    h("td", {}, date(invoice.due_date)),
    h("td", { class: "num" }, money(invoice.amount_due)),
    h("td", {}, payLink(invoice), " ", pdfButton(invoice)));
}

/** A settled period's hosted invoice (the provider's page: paid, or to pay), when one was issued;
 * a period the credits covered has none and links its PDF only. */
function hostedLink(invoice) {
  const href = invoice.hosted_invoice_url && safeUrl(invoice.hosted_invoice_url);
  if (!href) return null;
  return h("a", {
    class: "button", href, rel: "noopener noreferrer", target: "_blank", "data-hosted": "true",
    "aria-label": `View the hosted invoice ${invoiceLabel(invoice)}`,
  }, "View invoice");
}

function historyRow(invoice) {
  return h("tr", { "data-invoice": invoice.id },
    h("td", {}, date(invoice.invoice_date)),
    h("td", { class: "mono" }, invoiceLabel(invoice)),
    h("td", {}, invoice.payment_date ? date(invoice.payment_date) : h("span", { class: "muted" }, invoice.status)),
    h("td", { class: "num" }, money(invoice.total)),
    h("td", {}, hostedLink(invoice), " ", pdfButton(invoice)));
}

const PURPOSES = {
  add_credits: "Add credits", credit_pack: "Credit pack", auto_recharge: "Auto recharge", invoice: "Invoice",
  plan_change: "Plan change",
};

function paymentRow(payment) {
  const what = PURPOSES[payment.purpose] || payment.purpose;
  const button = h("button", {
    type: "button", class: "button", "aria-describedby": "refund-reason",
    "aria-label": `Request a refund of the ${what.toLowerCase()} payment of ${money(payment.amount)}`,
  }, "Request refund");
  button.disabled = !(payment.status === "succeeded" && can(REQUEST_REFUND));
  button.addEventListener("click", () => busy(button, async () => {
    const result = await api(orgPath("/refunds"), { method: "POST", body: { payment_id: payment.id } });
    const decision = result.decision;
    await loadPayments();
    if (decision.status === "approved") {
      notify(`Refund approved: ${money(decision.amount)}${decision.expected_by ? `, expected by ${date(decision.expected_by)}` : ""}.`);
    } else {
      showError(new Error(`Refund denied: ${decision.message}`));
    }
  }));
  return h("tr", {},
    h("td", {}, date(payment.created_at)),
    h("td", {}, what),
    h("td", {}, payment.refunded && payment.refunded.cents ? `${payment.status} (refunded ${money(payment.refunded)})` : payment.status),
    h("td", { class: "num" }, money(payment.amount)),
    h("td", {}, button));
}

async function loadPayments() {
  const payments = await listAll(orgPath("/payments"), { max: 200 });
  fillRows($("#payments"), payments.map(paymentRow), "No payments yet.");
}

export async function render() {
  const [overview, due, history] = await Promise.all([
    api(orgPath("/billing/overview")),
    listAll(orgPath("/payments_due"), { max: 200 }),
    listAll(orgPath("/invoices"), { max: 200 }),
  ]);
  renderBanners(overview);
  fillRows($("#payments-due"), due.map(dueRow), "No payments due.");
  fillRows($("#invoice-history"), history.map(historyRow), "No invoices yet.");
  if (!can(REQUEST_REFUND)) $("#refund-reason").textContent = reason(REQUEST_REFUND);
  await loadPayments();
}
