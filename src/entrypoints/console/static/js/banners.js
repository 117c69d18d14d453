import { $, dateTime, h } from "./ui.js";

// Production health from the billing overview, in words: blocked by a payment failure is told apart
// from blocked by credit thresholds, and the past-due grace window says whether it runs and until when.
// Values the console does not know yet still show, as "Production is blocked" with the API's value.
const HEALTH = {
  blocked_by_payment_failure: "Production is blocked by a payment failure. Update your payment method to restore "
    + "API access.",
  blocked_by_low_credit: "Production is blocked by credit thresholds: your credits are below the minimum, overage "
    + "protection included. Add credits to restore API access.",
  blocked_by_budget: "Production is blocked by your spend management budget until the end of the day (UTC).",
};

function graceBanner(grace) {
  if (grace.state === "active") {
    return h("div", { id: "grace-window", class: "banner", "data-grace": "active" },
      `Payment failed. Production keeps running during the grace period, which ends ${dateTime(grace.ends_at)}. `
      + "Update your payment method before then.");
  }
  if (grace.state === "expired") {
    return h("div", { id: "grace-window", class: "banner red", "data-grace": "expired" },
      `The grace period after the failed payment expired ${dateTime(grace.ends_at)}.`);
  }
  return null;
}

function healthBanner(health) {
  // Healthy, or running inside the grace window (said by the grace banner): nothing more to say.
  if (!health || health === "healthy" || health === "grace_active") return null;
  const text = HEALTH[health] || `Production is blocked (${String(health).replace(/_/g, " ")}).`;
  return h("div", { id: "production-health", class: "banner red", "data-health": health }, text);
}

/** Production health and payment recovery banners from the billing overview (past due, collectible
 * open invoices). */
export function renderBanners(overview) {
  const banners = (overview && overview.banners) || [];
  const grace = (overview && overview.grace_window) || {};
  const health = overview && overview.production_health;
  $("#banners").replaceChildren(...[healthBanner(health), graceBanner(grace), ...banners.map((b) => h("div", {
    class: b.kind === "past_due" ? "banner red" : "banner", "data-kind": b.kind,
  }, b.message))].filter(Boolean));
}
