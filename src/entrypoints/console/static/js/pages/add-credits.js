import { api, listItems, orgPath } from "../api.js";
import { ADD_CREDITS, can, reason } from "../permissions.js";
import { $, busy, dollarsToMicros, gate, h, notify, shown } from "../ui.js";
import { describe } from "./payment-methods.js";
import { mountEmbeddedCheckout, stripeClient } from "../stripe.js";

const MIN = 5_000_000;
const MAX = 5_000_000_000;

let embedded = null;

/** A crypto top-up pays in Stripe's embedded checkout, inline; it returns here with session_id. */
async function openCryptoCheckout(stripe, payment) {
  const panel = $("#crypto-checkout-panel");
  panel.hidden = false;
  if (embedded) embedded.destroy();
  embedded = await mountEmbeddedCheckout(stripe, payment.client_secret, "#crypto-checkout");
}

export async function render() {
  if (new URLSearchParams(location.search).get("session_id")) {
    notify("Crypto payment submitted. The credits land in your balance once the payment is confirmed.");
  }
  const methods = listItems(await api(orgPath("/payment_methods")));
  const select = $("#method");
  select.append(...methods.map((m) => h("option", { value: m.id }, `${describe(m)}${m.default ? " (default)" : ""}`)),
    h("option", { value: "crypto" }, "Cryptocurrency"));
  const submit = $("#add-submit");
  gate(submit, can(ADD_CREDITS), reason(ADD_CREDITS));
  const form = $("#add-credits-form");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const amountInput = $("#amount");
    await busy(submit, async () => {
      const micros = dollarsToMicros(amountInput.value);
      if (micros === null || Number.isNaN(micros) || micros < MIN || micros > MAX) {
        amountInput.setAttribute("aria-invalid", "true");
        amountInput.focus();
        throw new Error("Enter an amount between $5 and $5000.");
      }
      if (!select.value) {
        select.setAttribute("aria-invalid", "true");
        select.focus();
        throw new Error("Select a payment method.");
      }
      const crypto = select.value === "crypto";
      const payment = await api(orgPath("/credits"), {
        method: "POST",
        body: crypto
          ? { amount_micros: micros, method: "crypto", return_url: location.pathname }
          : { amount_micros: micros, payment_method_id: select.value },
      });
      const stripe = stripeClient();
      if (crypto && stripe && payment.client_secret && payment.status !== "succeeded") {
        await openCryptoCheckout(stripe, payment);
        return;
      }
      if (payment.status === "succeeded") notify(`${shown(payment.credits)} was added to your balance.`);
      else if (payment.status === "failed") throw new Error(payment.failure_message || "The payment failed.");
      else notify(`Payment of ${shown(payment.credits)} started; the credits land once it is confirmed.`);
      amountInput.value = "";
    }, form);
  });
}
