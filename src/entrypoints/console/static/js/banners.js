import { $, h } from "./ui.js";

/** Payment recovery banners from the billing overview (past due, collectible open invoices). */
export function renderBanners(overview) {
  const banners = (overview && overview.banners) || [];
  $("#banners").replaceChildren(...banners.map((b) => h("div", {
    class: b.kind === "past_due" ? "banner red" : "banner", "data-kind": b.kind,
  }, b.message)));
}
