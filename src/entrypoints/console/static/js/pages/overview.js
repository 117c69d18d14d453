import { api, orgPath } from "../api.js";
import { renderBanners } from "../banners.js";
import { $, dateTime, h, shown } from "../ui.js";

export async function render() {
  const o = await api(orgPath("/billing/overview"));
  renderBanners(o);
  const w = o.wallet;
  $("#total-credits").textContent = shown(w.total_credits);
  $("#usage-this-period").textContent = shown(w.usage_this_period);
  $("#remaining-credits").textContent = shown(w.remaining_credits);
  $("#available-remaining").textContent = shown(w.remaining_credits);
  $("#overage-protection").textContent = shown(w.overage_protection);
  $("#daily-hard-limit").replaceChildren(shown(w.daily_hard_limit_used),
    h("small", {}, w.daily_hard_limit ? ` of ${shown(w.daily_hard_limit)}` : " (no daily limit)"));
  $("#available-to-use").textContent = shown(w.available_to_use);

  const address = o.address && o.address.company_name ? o.address : null;
  $("#address-company").textContent = address
    ? [address.company_name, address.city, address.country].filter(Boolean).join(", ") : "No invoice address yet.";
  $("#billing-email").textContent = o.billing_email || "Invoices go to the primary owner's email.";
  const recharge = o.auto_recharge || {};
  // The seed: "Disabled" or "Enabled". A recharge paused after failed charges is still enabled; why it
  // does not charge now is said beside it.
  const paused = Boolean(recharge.enabled && recharge.paused_at);
  $("#auto-recharge-state").replaceChildren(
    h("span", { class: `badge ${recharge.enabled ? "green" : "off"}` }, recharge.enabled ? "Enabled" : "Disabled"),
    recharge.enabled ? ` Adds ${shown(recharge.amount)} when the balance falls to ${shown(recharge.threshold)}.` : "",
    paused ? h("span", { id: "auto-recharge-paused", class: "reason" },
      ` Paused since ${dateTime(recharge.paused_at)} after ${recharge.consecutive_failures || "repeated"} failed `
      + "charges; save the setting again to resume.") : null);
  const spend = o.spend_management || {};
  $("#spend-state").replaceChildren(
    h("span", { class: `badge ${spend.enabled ? "green" : "off"}` }, spend.state || (spend.enabled ? "Enabled" : "Disabled")),
    spend.enabled && spend.daily_budget ? ` Daily budget ${shown(spend.daily_budget)}.` : "");
}
