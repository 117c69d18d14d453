import { api, listItems, orgPath } from "../api.js";
import { $, busy, h, notify, shown } from "../ui.js";

async function refreshBalance() {
  const overview = await api(orgPath("/billing/overview"));
  $("#credit-balance").textContent = shown(overview.credit_balance);
}

export async function render() {
  const [offer] = await Promise.all([api(orgPath("/credit_packs")), refreshBalance()]);
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
