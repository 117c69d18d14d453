import { api, orgPath } from "../api.js";
import { renderBanners } from "../banners.js";
import { ACCESS_BILLING_PORTAL, can, reason } from "../permissions.js";
import { $, busy, date, gate, h, money, safeUrl } from "../ui.js";

export async function render() {
  const [overview, current] = await Promise.all([
    api(orgPath("/billing/overview")),
    api(orgPath("/subscription")),
  ]);
  renderBanners(overview);
  const sub = current ? current.subscription : null;
  if (!sub) {
    $("#no-subscription").hidden = false;
    return;
  }
  $("#subscription-summary").hidden = false;
  $("#sub-tier").replaceChildren(h("span", { class: `dot ${sub.color}`, "aria-hidden": "true" }), sub.tier);
  $("#sub-status").replaceChildren(
    h("span", { class: `badge ${sub.color}`, "data-color": sub.color }, sub.status_label), " ", sub.message);
  $("#sub-description").textContent = sub.description;
  $("#sub-price").textContent = `${money(sub.price)} / ${sub.interval}`;
  $("#sub-features").replaceChildren(...(sub.features || []).map((f) => h("li", {}, f)));
  $("#sub-period").textContent = `${date(sub.current_period_start)} – ${date(sub.current_period_end)}`
    + (sub.status === "trialing" && sub.trial_end ? ` (trial ends ${date(sub.trial_end)})` : "");

  if (sub.has_billing_record === false) return;
  $("#billing-details").hidden = false;
  const portal = $("#portal");
  gate(portal, can(ACCESS_BILLING_PORTAL), reason(ACCESS_BILLING_PORTAL));
  portal.addEventListener("click", () => busy(portal, async () => {
    const result = await api(orgPath("/billing_portal"), { method: "POST", body: { return_url: location.href } });
    const url = result && safeUrl(result.url);
    if (url) location.assign(url);
  }));
}
