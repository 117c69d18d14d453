import { api, orgPath } from "../api.js";
import { MANAGE_SPEND_MANAGEMENT, can, reason } from "../permissions.js";
import { $, busy, dollarsToMicros, gate, microsToInput, notify, shown } from "../ui.js";

function fill(spend) {
  $("#spend-enabled").checked = Boolean(spend.enabled);
  $("#daily-budget").value = spend.daily_budget ? microsToInput(spend.daily_budget.micros) : "";
  $("#email-threshold").value = spend.daily_email_threshold ? microsToInput(spend.daily_email_threshold.micros) : "";
  $("#webhook-url").value = spend.webhook_url || "";
  $("#consumed-today").textContent = shown(spend.consumed_today);
  $("#consumed-yesterday").textContent = shown(spend.consumed_yesterday);
}

function amount(input, label) {
  const micros = dollarsToMicros(input.value);
  if (Number.isNaN(micros)) {
    input.setAttribute("aria-invalid", "true");
    input.focus();
    throw new Error(`${label}: enter a dollar amount such as 40 or 12.50.`);
  }
  return micros;
}

export async function render() {
  let current = await api(orgPath("/spend_management"));
  fill(current);
  const allowed = can(MANAGE_SPEND_MANAGEMENT);
  const save = $("#spend-save");
  gate(save, allowed, reason(MANAGE_SPEND_MANAGEMENT));
  for (const input of document.querySelectorAll("#spend-form input")) input.disabled = !allowed;
  const form = $("#spend-form");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    await busy(save, async () => {
      const body = {
        enabled: $("#spend-enabled").checked,
        daily_budget_micros: amount($("#daily-budget"), "Daily budget"),
        daily_email_threshold_micros: amount($("#email-threshold"), "Email threshold"),
        monthly_cap_micros: current.monthly_cap ? current.monthly_cap.micros : null,
        webhook_url: $("#webhook-url").value.trim() || null,
      };
      current = await api(orgPath("/spend_management"), { method: "PUT", body });
      fill(current);
      notify("Spend management saved.");
    }, form);
  });
}
