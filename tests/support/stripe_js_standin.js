// A stand-in for Stripe.js (https://js.stripe.com/v3/) that the browser tests serve from the Stripe
// stub's origin. It implements only what the console calls — Stripe(key), initEmbeddedCheckout
// ({fetchClientSecret}) with mount/destroy, elements({clientSecret}).create("payment").mount, and
// confirmSetup({elements, redirect}) — and talks to the same local stub as the server, with the
// publishable key and the object's client secret, as Stripe.js does. Its forms are plain DOM (no
// frames, no inline styles) so the console's Content-Security-Policy applies to everything it does:
// a fetch to the stub's origin works only because the policy names that origin.
(() => {
  const API = new URL(document.currentScript.src).origin;
  const TEST_CARDS = [
    ["pm_card_visa", "Visa ending 4242 (test)"],
    ["pm_card_mastercard", "Mastercard ending 4444 (test)"],
    ["pm_card_chargeDeclined", "Visa, declines (test)"],
  ];

  async function call(method, path, key, params) {
    const body = params ? new URLSearchParams(params).toString() : undefined;
    const url = method === "GET" && body ? `${API}${path}?${body}` : `${API}${path}`;
    const response = await fetch(url, {
      method, body: method === "GET" ? undefined : body, credentials: "omit",
      headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/x-www-form-urlencoded" },
    });
    const json = await response.json();
    return response.ok ? { data: json } : { error: json.error || { message: `HTTP ${response.status}` } };
  }

  function node(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) el.setAttribute(name, value);
    el.append(...children);
    return el;
  }

  function cardPicker(id) {
    const select = node("select", { id, name: id });
    for (const [value, label] of TEST_CARDS) select.append(node("option", { value }, label));
    return node("div", { class: "field" }, node("label", { for: id }, "Card (Stripe.js stand-in)"), select);
  }

  function resolve(target) {
    return typeof target === "string" ? document.querySelector(target) : target;
  }

  window.Stripe = function Stripe(publishableKey) {
    if (!/^pk_/.test(String(publishableKey))) throw new Error("Stripe(): a publishable key is required");
    return {
      async initEmbeddedCheckout({ fetchClientSecret, onComplete } = {}) {
        if (typeof fetchClientSecret !== "function") throw new Error("fetchClientSecret is required");
        const secret = await fetchClientSecret();
        const sessionId = String(secret).split("_secret_")[0];
        let root = null;
        return {
          async mount(target) {
            root = resolve(target);
            const found = await call("GET", `/v1/payment_pages/${sessionId}`, publishableKey, { client_secret: secret });
            if (found.error) throw new Error(found.error.message);
            const session = found.data;
            const trial = session.trial_period_days > 0;
            const crypto = (session.payment_method_types || []).includes("crypto");
            const pay = node("button", { type: "button", class: "button primary", "data-standin": "pay" },
              trial ? "Start trial" : (crypto ? "Pay with crypto" : "Pay and subscribe"));
            const error = node("p", { role: "alert", "data-standin": "error" });
            const form = node("div", { "data-standin": "embedded-checkout" },
              node("p", {}, `Stripe Checkout (stand-in) · ${session.id}`));
            if (!trial && !crypto) form.append(cardPicker("standin-checkout-card"));
            form.append(pay, error);
            root.replaceChildren(form);
            pay.addEventListener("click", async () => {
              const picked = root.querySelector("#standin-checkout-card");
              const params = { client_secret: secret };
              if (picked) params.payment_method = picked.value;
              const done = await call("POST", `/v1/payment_pages/${sessionId}/confirm`, publishableKey, params);
              if (done.error) {
                error.textContent = done.error.message;
                return;
              }
              if (typeof onComplete === "function") {
                onComplete();
                return;
              }
              location.assign(String(done.data.return_url).replace("{CHECKOUT_SESSION_ID}", sessionId));
            });
          },
          unmount() { if (root) root.replaceChildren(); },
          destroy() { if (root) root.replaceChildren(); root = null; },
        };
      },
      elements({ clientSecret } = {}) {
        if (!clientSecret) throw new Error("elements(): clientSecret is required");
        const elements = {
          clientSecret,
          element: null,
          create(type) {
            if (type !== "payment") throw new Error(`the stand-in has no ${type} element`);
            let root = null;
            elements.element = {
              mount(target) {
                root = resolve(target);
                root.replaceChildren(node("div", { "data-standin": "payment-element" }, cardPicker("standin-card")));
              },
              unmount() { if (root) root.replaceChildren(); },
              destroy() { if (root) root.replaceChildren(); root = null; },
              value() { return root ? root.querySelector("#standin-card").value : null; },
            };
            return elements.element;
          },
          async submit() { return {}; },
        };
        return elements;
      },
      async confirmSetup({ elements, redirect } = {}) {
        if (!elements || !elements.element) throw new Error("confirmSetup(): mount a payment element first");
        if (redirect !== "if_required") throw new Error("the stand-in only supports redirect: 'if_required'");
        const secret = elements.clientSecret;
        const id = String(secret).split("_secret_")[0];
        const done = await call("POST", `/v1/setup_intents/${id}/confirm`, publishableKey,
          { client_secret: secret, payment_method: elements.element.value() });
        return done.error ? { error: done.error } : { setupIntent: done.data };
      },
    };
  };
})();
