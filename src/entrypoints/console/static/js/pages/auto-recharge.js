import { api, orgPath } from "../api.js";
import { MANAGE_AUTO_RECHARGE, can, reason } from "../permissions.js";
import { $, busy, gate, notify, shown } from "../ui.js";

function show(recharge) {
  $("#recharge-enabled").checked = Boolean(recharge.enabled);
  $("#recharge-detail").textContent = `When the balance falls to ${shown(recharge.threshold)}, `
    + `${shown(recharge.amount)} is charged to your default card.`
    + (recharge.enabled && recharge.paused_at
      ? " Enabled, but paused after failed charges; save changes to turn it on again." : "");
  $("#recharge-state").textContent = recharge.enabled ? "Enabled" : "Disabled";
}

export async function render() {
  let recharge = await api(orgPath("/auto_recharge"));
  show(recharge);
  const allowed = can(MANAGE_AUTO_RECHARGE);
  const save = $("#recharge-save");
  gate(save, allowed, reason(MANAGE_AUTO_RECHARGE));
  $("#recharge-enabled").disabled = !allowed;
  const form = $("#auto-recharge-form");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    await busy(save, async () => {
      const saved = await api(orgPath("/auto_recharge"), {
        method: "PUT",
        body: {
          enabled: $("#recharge-enabled").checked, threshold_micros: recharge.threshold.micros,
          amount_micros: recharge.amount.micros, payment_method_id: recharge.payment_method_id ?? null,
        },
      });
      recharge = saved;
      show(recharge);
      notify(`Auto recharge is ${recharge.enabled ? "enabled" : "disabled"}.`);
    }, form);
  });
}
