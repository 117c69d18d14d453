import { api, orgPath } from "../api.js";
import { MANAGE_LOW_BALANCE_ALERTS, UPDATE_BILLING, can, reason } from "../permissions.js";
import { $, busy, dollarsToMicros, gate, microsToInput, notify } from "../ui.js";

export async function render() {
  const [email, alert] = await Promise.all([
    api(orgPath("/billing_email")),
    api(orgPath("/low_balance_alert")),
  ]);
  $("#email").value = email.email || "";
  const allowed = can(UPDATE_BILLING);
  const save = $("#email-save");
  gate(save, allowed, reason(UPDATE_BILLING));
  $("#email").disabled = !allowed;
  const form = $("#email-form");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    await busy(save, async () => {
      const saved = await api(orgPath("/billing_email"), { method: "PUT", body: { email: $("#email").value.trim() } });
      $("#email").value = saved.email || "";
      notify("Billing email updated.");
    }, form);
  });

  $("#low-balance-enabled").checked = Boolean(alert.enabled);
  $("#low-balance-threshold").value = microsToInput(alert.threshold.micros);
  const mayAlert = can(MANAGE_LOW_BALANCE_ALERTS);
  const saveAlert = $("#low-balance-save");
  gate(saveAlert, mayAlert, reason(MANAGE_LOW_BALANCE_ALERTS));
  $("#low-balance-enabled").disabled = !mayAlert;
  $("#low-balance-threshold").disabled = !mayAlert;
  const alertForm = $("#low-balance-form");
  alertForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    await busy(saveAlert, async () => {
      const micros = dollarsToMicros($("#low-balance-threshold").value);
      if (micros === null || Number.isNaN(micros) || micros <= 0) throw new Error("Enter a threshold in dollars.");
      await api(orgPath("/low_balance_alert"), {
        method: "PUT", body: { enabled: $("#low-balance-enabled").checked, threshold_micros: micros },
      });
      notify("Low-balance alert saved.");
    }, alertForm);
  });
}
