import { api, listItems, orgPath } from "../api.js";
import { $, busy, gate, h, money, notify, showError } from "../ui.js";
import { renderBanners } from "../banners.js";
import { SUBSCRIBE_TO_PLAN, can } from "../permissions.js";

const CHECKOUT_MESSAGES = {
  complete: "Checkout complete. Your subscription is active.",
  open: "Checkout is still open. Complete it to start the subscription.",
  expired: "The checkout expired before it was completed. Start it again.",
  canceled: "Checkout was canceled. No payment was taken.",
};

const SUBSCRIBED = ["active", "trialing", "past_due"];

let choices = [];
let subscription = null;
let preview = null;

function planName(code) {
  const choice = choices.find((c) => c.plan === code);
  return choice ? choice.name : code;
}

function selectedPlan() {
  const checked = $("#plan-options input[name=plan]:checked");
  return checked ? checked.value : null;
}

function planCard(choice, checked) {
  const price = money(choice.price);
  return h("label", { class: "plan" },
    h("span", { class: "plan-name" },
      h("input", { type: "radio", name: "plan", value: choice.plan, checked }), choice.name),
    h("div", { class: "plan-price" }, `${price} / ${choice.interval}`),
    h("div", {}, choice.description),
    h("ul", {}, (choice.features || []).map((f) => h("li", {}, f))));
}

function updateActions() {
  const plan = selectedPlan();
  const choice = choices.find((c) => c.plan === plan) || choices[0];
  if (!choice) return;
  const button = $("#plan-action");
  button.textContent = choice.action_label;
  gate(button, Boolean(choice.enabled), choice.disabled_reason);
  // With a subscription, another tier is reached by an immediate plan change (primary owner only).
  const change = $("#plan-change-preview");
  const changeable = Boolean(subscription) && SUBSCRIBED.includes(subscription.status) && subscription.plan !== plan;
  change.hidden = !changeable;
  change.disabled = !can(SUBSCRIBE_TO_PLAN);
  $("#plan-change").hidden = true;
}

async function showCheckoutResult() {
  const query = new URLSearchParams(location.search);
  const status = query.get("checkout_status");
  const sessionId = query.get("checkout_session_id");
  if (!status) return;
  let shown = status;
  if (sessionId) {
    try {
      const checked = await api(orgPath(`/checkout_sessions/${encodeURIComponent(sessionId)}`));
      shown = (checked && checked.status) || status;
    } catch {
      shown = status;
    }
  }
  $("#checkout-result").textContent = CHECKOUT_MESSAGES[shown] || `Checkout status: ${shown}`;
}

function openCheckout(session) {
  const panel = $("#checkout");
  const choice = choices.find((c) => c.plan === session.plan) || {};
  $("#checkout-summary").replaceChildren(
    h("dt", {}, "Plan"), h("dd", {}, choice.name || session.plan),
    h("dt", {}, "Price"), h("dd", {}, choice.price ? `${money(choice.price)} / ${choice.interval}` : "—"),
    h("dt", {}, "Trial"), h("dd", {}, session.trial ? "Yes, the free trial starts now" : "No"),
    h("dt", {}, "Session"), h("dd", { class: "mono" }, session.id));
  panel.hidden = false;
  panel.focus();
  $("#checkout-pay").onclick = (event) => busy(event.currentTarget, async () => {
    const done = await api(orgPath(`/checkout_sessions/${encodeURIComponent(session.id)}/complete`), { method: "POST" });
    location.assign(returnUrl(done, session));
  });
  $("#checkout-cancel").onclick = () => {
    panel.hidden = true;
    const url = new URL(location.href);
    url.search = new URLSearchParams({ checkout_session_id: session.id, checkout_status: "canceled" }).toString();
    location.assign(url.pathname + url.search);
  };
}

/** The page to come back to, with the checkout status in its query; only a path of this site. */
function returnUrl(done, session) {
  const candidate = done && done.return_url;
  if (candidate) {
    const url = new URL(candidate, location.origin);
    if (url.origin === location.origin) return url.pathname + url.search;
  }
  const status = (done && done.status) || "complete";
  return `${location.pathname}?${new URLSearchParams({ checkout_session_id: session.id, checkout_status: status })}`;
}

async function previewChange() {
  const plan = selectedPlan();
  preview = await api(orgPath("/subscription/change/preview"), { method: "POST", body: { plan } });
  $("#plan-change-summary").replaceChildren(
    h("dt", {}, "From"), h("dd", {}, planName(preview.from_plan)),
    h("dt", {}, "To"), h("dd", {}, planName(preview.to_plan)),
    h("dt", {}, "Credit for unused time"), h("dd", {}, money(preview.unused_credit)),
    h("dt", {}, "New plan until period end"), h("dd", {}, money(preview.new_plan_charge)),
    h("dt", {}, "Charged now"), h("dd", {}, money(preview.amount_due)));
  $("#plan-change").hidden = false;
}

export async function render() {
  const [plans, overview, current] = await Promise.all([
    api(orgPath("/plans")),
    api(orgPath("/billing/overview")),
    api(orgPath("/subscription")),
  ]);
  choices = listItems(plans);
  subscription = current ? current.subscription : null;
  renderBanners(overview);
  if (subscription) $("#current-plan").textContent = `Current plan: ${subscription.tier} (${subscription.status_label})`;
  const initial = (subscription && subscription.plan) || (choices[1] || choices[0] || {}).plan;
  $("#plan-options").append(...choices.map((c) => planCard(c, c.plan === initial)));
  $("#plan-options").addEventListener("change", updateActions);
  updateActions();
  await showCheckoutResult();

  const form = $("#plan-form");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const plan = selectedPlan();
    if (!plan) {
      showError(new Error("Choose a plan first."));
      return;
    }
    const session = await busy($("#plan-action"), () => api(orgPath("/checkout_sessions"), {
      method: "POST", body: { plan, return_url: location.pathname },
    }), form);
    if (session) openCheckout(session);
  });
  $("#plan-change-preview").addEventListener("click", (event) => busy(event.currentTarget, previewChange));
  $("#plan-change-cancel").addEventListener("click", () => { $("#plan-change").hidden = true; });
  $("#plan-change-confirm").addEventListener("click", (event) => busy(event.currentTarget, async () => {
    await api(orgPath("/subscription/change"), { method: "POST", body: { plan: preview.to_plan, preview_at: preview.at } });
    const current = await api(orgPath("/subscription"));
    subscription = current.subscription;
    $("#current-plan").textContent = `Current plan: ${subscription.tier} (${subscription.status_label})`;
    updateActions();
    notify(`Your plan is now ${subscription.tier}.`);
  }));
}
