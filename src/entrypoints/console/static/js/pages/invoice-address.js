import { api, orgPath } from "../api.js";
import { UPDATE_BILLING, can, reason } from "../permissions.js";
import { $, busy, gate, notify } from "../ui.js";

const FIELDS = ["company_name", "address_1", "address_2", "city", "postal_code", "region", "country", "po_number"];

function fill(address) {
  for (const name of FIELDS) $(`#address-${name}`).value = (address && address[name]) || "";
}

export async function render() {
  const loaded = await api(orgPath("/invoice_address"));
  fill(loaded);
  const allowed = can(UPDATE_BILLING);
  const save = $("#address-save");
  gate(save, allowed, reason(UPDATE_BILLING));
  const form = $("#address-form");
  for (const input of form.querySelectorAll("input")) input.disabled = !allowed;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    await busy(save, async () => {
      const body = {};
      for (const name of FIELDS) {
        const value = $(`#address-${name}`).value.trim();
        body[name] = value === "" ? null : value;
      }
      if (body.country) body.country = body.country.toUpperCase();
      const saved = await api(orgPath("/invoice_address"), { method: "PUT", body });
      fill(saved);
      notify("Invoice address saved.");
    }, form);
  });
}
