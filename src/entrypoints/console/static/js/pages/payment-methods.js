import { api, listItems, orgPath } from "../api.js";
import { UPDATE_BILLING, can, reason } from "../permissions.js";
import { $, busy, fillRows, gate, h, notify, trashIcon } from "../ui.js";
import { stripeClient } from "../stripe.js";

const TYPE_LABELS = { card: "Card", sepa_debit: "SEPA Direct Debit", us_bank_account: "US bank account", crypto: "Crypto" };

export function describe(method) {
  const brand = method.brand ? method.brand[0].toUpperCase() + method.brand.slice(1) : TYPE_LABELS[method.payment_type];
  const last4 = method.last4 || (method.iban ? method.iban.replace(/^\*+/, "") : null);
  return last4 ? `${brand} ending ${last4}` : brand || method.payment_type;
}

function expiry(method) {
  if (!method.exp_month || !method.exp_year) return "—";
  return `${String(method.exp_month).padStart(2, "0")}/${method.exp_year}`;
}

function row(method, allowed) {
  const label = describe(method);
  let status;
  if (method.default) {
    status = h("span", { class: "badge default" }, "Default Card");
  } else {
    status = h("button", { type: "button", class: "button", "aria-label": `Set ${label} as default` }, "Set as Default");
    status.disabled = !allowed;
    status.addEventListener("click", () => busy(status, async () => {
      await api(orgPath(`/payment_methods/${encodeURIComponent(method.id)}/set_default`), { method: "PUT" });
      notify(`${label} is now the default payment method.`);
      await load();
    }));
  }
  const remove = h("button", { type: "button", class: "button icon danger", "aria-label": `Delete ${label}`, title: `Delete ${label}` },
    trashIcon());
  remove.disabled = !allowed;
  remove.addEventListener("click", () => busy(remove, async () => {
    if (!window.confirm(`Delete ${label}?`)) return;
    await api(orgPath(`/payment_methods/${encodeURIComponent(method.id)}`), { method: "DELETE" });
    notify(`${label} was removed.`);
    await load();
  }));
  return h("tr", { "data-method": method.id },
    h("td", {}, label),
    h("td", {}, method.name || "—"),
    h("td", {}, expiry(method)),
    h("td", {}, status),
    h("td", {}, remove));
}

async function load() {
  const methods = listItems(await api(orgPath("/payment_methods")));
  fillRows($("#methods"), methods.map((m) => row(m, can(UPDATE_BILLING))), "No payment methods yet.");
}

/** The payment method the form collected: Stripe's PaymentElement confirms the setup intent and
 * names the method it saved; offline, the picked test method. */
async function collectedMethod(stripe, elements) {
  if (!stripe) return $("#test-card").value;
  // Cards confirm in place; a method that must redirect (bank debits) comes back to this page, and the
  // setup_intent.succeeded webhook attaches it on the server.
  const { setupIntent, error } = await stripe.confirmSetup({
    elements, redirect: "if_required", confirmParams: { return_url: location.href },
  });
  if (error) throw new Error(error.message || "The card could not be saved.");
  const method = setupIntent && setupIntent.payment_method;
  return typeof method === "string" ? method : method && method.id;
}

export async function render() {
  const allowed = can(UPDATE_BILLING);
  const add = $("#add-card");
  gate(add, allowed, reason(UPDATE_BILLING));
  const panel = $("#add-card-panel");
  const stripe = stripeClient();
  let elements = null;
  let paymentElement = null;
  $("#card-simulation").hidden = Boolean(stripe);
  const toggle = (open) => {
    panel.hidden = !open;
    add.setAttribute("aria-expanded", String(open));
    if (open && !stripe) $("#test-card").focus();
    if (!open && paymentElement) {
      paymentElement.destroy();
      paymentElement = null;
      elements = null;
    }
  };
  add.addEventListener("click", () => busy(add, async () => {
    // The setup intent's client secret (seti_…_secret_…) is what the provider's card form needs.
    const intent = await api(orgPath("/payment_methods/payment_intent"), { method: "POST" });
    if (stripe) {
      elements = stripe.elements({ clientSecret: intent.client_secret });
      paymentElement = elements.create("payment");
      paymentElement.mount("#payment-element");
    }
    toggle(true);
  }));
  $("#add-card-cancel").addEventListener("click", () => toggle(false));
  const form = $("#add-card-form");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    await busy(form.querySelector("button[type=submit]"), async () => {
      const paymentMethodId = await collectedMethod(stripe, elements);
      const method = await api(orgPath("/payment_methods/create_and_attach"), {
        method: "POST", body: { payment_method_id: paymentMethodId },
      });
      toggle(false);
      notify(`${describe(method)} was added.`);
      await load();
    }, form);
  });
  await load();
}
