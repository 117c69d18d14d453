import { $, dateTime, h } from "./ui.js";

// Production health from the billing overview, in words: blocked by a payment failure is told apart
// from blocked by credit thresholds, and the past-due grace window says whether it runs and until when.
// Values the console does not know yet still show, as "Production is blocked" with the API's value.
const HEALTH = {
  grace_active: (g) => ({
    tone: "yellow",
    text: `Payment failed. Production keeps running during the grace period, which ends ${dateTime(g.ends_at)}. `
      + "Update your payment method before then.",
  }),
  blocked_by_payment_failure: (g) => ({
    tone: "red",
    text: "Production is blocked by a payment failure"
      + (g.state === "expired" && g.ends_at ? `: the grace period expired ${dateTime(g.ends_at)}` : "")
      + ". Update your payment method to restore API access.",
  }),
  blocked_by_low_credit: () => ({
    tone: "red",
    text: "Production is blocked by credit thresholds: your credits are below the minimum, overage protection "
      + "included. Add credits to restore API access.",
  }),
  blocked_by_budget: () => ({
    tone: "red",
    text: "Production is blocked by your spend management budget until the end of the day (UTC).",
  }),
};

function healthBanner(overview) {
  const health = overview && overview.production_health;
  if (!health || health === "healthy") return null;
  const grace = (overview && overview.grace_window) || {};
  const describe = HEALTH[health] || (() => ({
    tone: "red", text: `Production is blocked (${String(health).replace(/_/g, " ")}).`,
  }));
  const { tone, text } = describe(grace);
  return h("div", {
    id: "production-health", class: tone === "red" ? "banner red" : "banner", "data-health": health,
    "data-grace": grace.state || "none",
  }, text);
}

/** Production health and payment recovery banners from the billing overview (past due, collectible
 * open invoices). */
export function renderBanners(overview) {
  const banners = (overview && overview.banners) || [];
  $("#banners").replaceChildren(...[healthBanner(overview), ...banners.map((b) => h("div", {
    class: b.kind === "past_due" ? "banner red" : "banner", "data-kind": b.kind,
  }, b.message))].filter(Boolean));
}
