// The seed's Team plan page. Left column: the Team plan module — the plan selector ("Choose a plan")
// while the workspace has no subscription, else the read-only summary (Tier with its status indicator,
// Status, Description, Price, Features) with Billing details below it; plan changes open behind the
// summary's "Change plan" button. Right column, permanently: the credit balance and the packs.
import { api, listItems, orgPath } from "../api.js";
import { $, busy, date, gate, h, money, notify, safeUrl, showError, shown } from "../ui.js";
import { renderBanners } from "../banners.js";
import { ACCESS_BILLING_PORTAL, SUBSCRIBE_TO_PLAN, can, reason } from "../permissions.js";
import { mountEmbeddedCheckout, stripeClient } from "../stripe.js";

const CHECKOUT_MESSAGES = {
  complete: "Checkout complete. Your subscription is active.",
  open: "Checkout is still open. Complete it to start the subscription.",
  expired: "The checkout expired before it was completed. Start it again.",
  canceled: "Checkout was canceled. No payment was taken.",
};

// A plan change is possible from these; an ended subscription leaves the workspace with none.
const SUBSCRIBED = ["active", "trialing", "past_due"];
const ENDED = ["canceled", "incomplete_expired"];

let choices = [];
let subscription = null;
let preview = null;
let changing = false;
let embedded = null;

function hasSubscription() {
  return Boolean(subscription) && !ENDED.includes(subscription.status);
}

function planName(code) {
  const choice = choices.find((c) => c.plan === code);
  return choice ? choice.name : code;
}

function selectedPlan() {
  const checked = $("#plan-options input[name=plan]:checked");
  return checked ? checked.value : null;
}

function planCard(choice, checked) {
  return h("label", { class: "plan" },
    h("span", { class: "plan-name" },
      h("input", { type: "radio", name: "plan", value: choice.plan, checked }), choice.name),
    h("div", { class: "plan-price" }, `${money(choice.price)} / ${choice.interval}`),
    h("div", {}, choice.description),
    h("ul", {}, (choice.features || []).map((f) => h("li", {}, f))));
}

/** The module shows the selector (no subscription, or a plan change in progress) or the summary. */
function showModule() {
  const summary = hasSubscription() && !changing;
  $("#team-plan-loading").hidden = true;
  $("#plan-form").hidden = summary;
  $("#plan-summary").hidden = !summary;
  $("#plan-action").hidden = changing;
  $("#plan-change-close").hidden = !changing;
  $("#plan-change").hidden = true;
  updateActions();
}

function updateActions() {
  const plan = selectedPlan();
  const choice = choices.find((c) => c.plan === plan) || choices[0];
  if (!choice) return;
  const button = $("#plan-action");
  button.textContent = choice.action_label;
  gate(button, Boolean(choice.enabled), choice.disabled_reason);
  const change = $("#plan-change-preview");
  change.hidden = !changing || !subscription || subscription.plan === plan;
  change.disabled = !can(SUBSCRIBE_TO_PLAN);
  if (changing) $("#plan-action-reason").textContent = can(SUBSCRIBE_TO_PLAN) ? "" : reason(SUBSCRIBE_TO_PLAN);
}

function renderSummary() {
  const sub = subscription;
  if (!hasSubscription()) return;
  $("#sub-tier").replaceChildren(
    h("span", { class: `dot ${sub.color}`, "data-color": sub.color, role: "img", "aria-label": sub.status_label }),
    sub.tier);
  $("#sub-status").replaceChildren(
    h("span", { class: `badge ${sub.color}`, "data-color": sub.color }, sub.status_label), " ", sub.message || "");
  $("#sub-description").textContent = sub.description || "";
  $("#sub-price").textContent = sub.price ? `${money(sub.price)} / ${sub.interval}` : "—";
  $("#sub-features").replaceChildren(...(sub.features || []).map((f) => h("li", {}, f)));
  $("#sub-period").textContent = `${date(sub.current_period_start)} – ${date(sub.current_period_end)}`
    + (sub.status === "trialing" && sub.trial_end ? ` (trial ends ${date(sub.trial_end)})` : "");
  // Cancelled in the billing portal: it runs to the end of the period, then ends.
  $("#sub-cancel").hidden = !sub.cancel_at_period_end;
  $("#sub-cancel").textContent = sub.cancel_at_period_end
    ? `Cancels at the end of the period, on ${date(sub.current_period_end)}` : "";
  // Changing plans is for a current subscription; an unpaid, paused or incomplete one is recovered first.
  const changeable = SUBSCRIBED.includes(sub.status);
  const why = !can(SUBSCRIBE_TO_PLAN) ? reason(SUBSCRIBE_TO_PLAN)
    : ((choices[0] && choices[0].disabled_reason) || `The subscription is ${sub.status_label.toLowerCase()}`);
  gate($("#change-plan"), changeable && can(SUBSCRIBE_TO_PLAN), why);

  const details = $("#billing-details");
  details.hidden = sub.has_billing_record === false;
  gate($("#portal"), can(ACCESS_BILLING_PORTAL), reason(ACCESS_BILLING_PORTAL));
}

async function showCheckoutResult() {
  const query = new URLSearchParams(location.search);
  const providerSessionId = query.get("session_id");
  if (providerSessionId) {
    // Back from Stripe's embedded checkout: the server says where the session stands.
    const checked = await api(orgPath(`/checkout_sessions/provider/${encodeURIComponent(providerSessionId)}`));
    $("#checkout-result").textContent = CHECKOUT_MESSAGES[checked.status] || `Checkout status: ${checked.status}`;
    $("#checkout-result").dataset.status = checked.status;
    return;
  }
  const status = query.get("checkout_status");
  const sessionId = query.get("checkout_session_id");
  if (!status) return;
  let result = status;
  if (sessionId) {
    try {
      const checked = await api(orgPath(`/checkout_sessions/${encodeURIComponent(sessionId)}`));
      result = (checked && checked.status) || status;
    } catch {
      result = status;
    }
  }
  $("#checkout-result").textContent = CHECKOUT_MESSAGES[result] || `Checkout status: ${result}`;
}

/** Stripe's embedded checkout, inline in the checkout panel, from the session's client secret. */
async function openEmbeddedCheckout(stripe, session) {
  const panel = $("#checkout");
  $("#checkout-simulation").hidden = true;
  $("#checkout-summary").hidden = true;
  $("#checkout-pay").hidden = true;
  panel.hidden = false;
  if (embedded) embedded.destroy();
  embedded = await mountEmbeddedCheckout(stripe, session.client_secret, "#embedded-checkout");
  panel.focus();
  $("#checkout-cancel").onclick = () => {
    if (embedded) embedded.destroy();
    embedded = null;
    panel.hidden = true;
    $("#checkout-result").textContent = CHECKOUT_MESSAGES.canceled;
  };
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

/** The proration invoice of a plan change, linked right away (the provider hosts it). */
function showChangeInvoice(invoice) {
  const holder = $("#plan-change-invoice");
  const url = invoice && safeUrl(invoice.hosted_invoice_url);
  holder.hidden = !url;
  if (!url) return;
  holder.replaceChildren("The plan change was invoiced: ",
    h("a", { href: url, target: "_blank", rel: "noopener noreferrer" }, "view and pay the invoice"), ".");
}

// ---------------------------------------------------------------- right column: balance and packs

async function refreshBalance() {
  const overview = await api(orgPath("/billing/overview"));
  $("#credit-balance").textContent = shown(overview.credit_balance);
  return overview;
}

function renderPacks(offer) {
  // The seed's three states, word for word from the API: no subscription, not the primary owner, available.
  const message = $("#pack-message");
  message.textContent = offer.message;
  message.dataset.state = offer.state;
  $("#packs").replaceChildren(...listItems(offer.packs).map((pack) => {
    const button = h("button", {
      type: "button", class: "button pack", "data-pack": pack.price_dollars, "aria-describedby": "pack-message",
      title: offer.enabled ? null : offer.message,
    }, pack.label, h("small", {}, `adds ${shown(pack.credits)}`));
    button.disabled = !offer.enabled;
    button.addEventListener("click", () => busy(button, async () => {
      await api(orgPath("/credit_packs/purchase"), { method: "POST", body: { pack_dollars: pack.price_dollars } });
      await refreshBalance();
      notify(`Purchased the ${pack.label} pack: ${shown(pack.credits)} added to your balance.`);
    }));
    return button;
  }));
}

// ---------------------------------------------------------------- the page

async function load() {
  const [plans, overview, current, offer] = await Promise.all([
    api(orgPath("/plans")), refreshBalance(), api(orgPath("/subscription")), api(orgPath("/credit_packs")),
  ]);
  choices = listItems(plans);
  subscription = current ? current.subscription : null;
  renderBanners(overview);
  renderPacks(offer);
  const initial = (subscription && subscription.plan) || (choices[1] || choices[0] || {}).plan;
  $("#plan-options").replaceChildren(h("legend", {}, "Choose a plan"),
    ...choices.map((c) => planCard(c, c.plan === initial)));
  renderSummary();
  showModule();
}

export async function render() {
  await load();
  await showCheckoutResult();

  const form = $("#plan-form");
  $("#plan-options").addEventListener("change", updateActions);
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
    if (!session) return;
    const stripe = stripeClient();
    if (stripe) await busy($("#plan-action"), () => openEmbeddedCheckout(stripe, session), form);
    else openCheckout(session);
  });
  $("#change-plan").addEventListener("click", () => {
    changing = true;
    showModule();
    $("#plan-options").focus();
  });
  $("#plan-change-close").addEventListener("click", () => {
    changing = false;
    showModule();
  });
  $("#plan-change-preview").addEventListener("click", (event) => busy(event.currentTarget, previewChange));
  $("#plan-change-cancel").addEventListener("click", () => { $("#plan-change").hidden = true; });
  $("#plan-change-confirm").addEventListener("click", (event) => busy(event.currentTarget, async () => {
    const changed = await api(orgPath("/subscription/change"), {
      method: "POST", body: { plan: preview.to_plan, preview_at: preview.at },
    });
    changing = false;
    await load();
    notify(`Your plan is now ${subscription.tier}.`);
    showChangeInvoice(changed && changed.hosted_invoice);
  }));
  const portal = $("#portal");
  portal.addEventListener("click", () => busy(portal, async () => {
    const result = await api(orgPath("/billing_portal"), { method: "POST", body: { return_url: location.href } });
    const url = result && safeUrl(result.url);
    if (url) location.assign(url);
  }));
}
