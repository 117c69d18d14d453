import { api, listItems, orgPath } from "../api.js";
import { UPDATE_BILLING, can, reason } from "../permissions.js";
import { $, busy, fillRows, gate, h, notify, shortId, trashIcon } from "../ui.js";

const EU = new Set(["AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU", "IE", "IT",
  "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK"]);
const NAMES = { GB: "United Kingdom VAT number", CH: "Swiss VAT number", NO: "Norwegian VAT number" };

/** The description the API gives a registration of `country` when none is typed (billing_core.tax). */
function taxDescription(country) {
  if (!/^[A-Z]{2}$/.test(country)) return "";
  return EU.has(country) ? "European VAT number" : (NAMES[country] || `Tax ID (${country})`);
}

function row(registration, allowed) {
  const verify = h("button", { type: "button", class: "button", "aria-label": `Verify ${registration.value}` }, "Verify");
  verify.disabled = !allowed;
  verify.addEventListener("click", () => busy(verify, async () => {
    const result = await api(orgPath(`/tax_registrations/${encodeURIComponent(registration.id)}/verify`), { method: "POST" });
    notify(result.status === "verified" ? `${registration.value} is verified.` : `${registration.value} could not be verified yet.`);
    await load();
  }));
  const remove = h("button", { type: "button", class: "button icon danger", "aria-label": `Delete ${registration.value}` }, trashIcon());
  remove.disabled = !allowed;
  remove.addEventListener("click", () => busy(remove, async () => {
    await api(orgPath(`/tax_registrations/${encodeURIComponent(registration.id)}`), { method: "DELETE" });
    notify(`${registration.value} was removed.`);
    await load();
  }));
  return h("tr", {},
    h("td", { class: "mono", title: registration.id }, shortId(registration.id)),
    h("td", {}, registration.country),
    h("td", {}, registration.description),
    h("td", { class: "mono" }, registration.value),
    h("td", {}, h("span", { class: `badge ${registration.status}` }, registration.status)),
    h("td", {}, registration.status === "verified" ? null : verify, " ", remove));
}

async function load() {
  const registrations = listItems(await api(orgPath("/tax_registrations")));
  fillRows($("#tax-registrations"), registrations.map((r) => row(r, can(UPDATE_BILLING))), "No tax registrations yet.");
}

export async function render() {
  const add = $("#add-tax");
  gate(add, can(UPDATE_BILLING), reason(UPDATE_BILLING));
  const panel = $("#add-tax-panel");
  const toggle = (open) => {
    panel.hidden = !open;
    add.setAttribute("aria-expanded", String(open));
    if (open) $("#tax-country").focus();
  };
  add.addEventListener("click", () => toggle(panel.hidden));
  $("#add-tax-cancel").addEventListener("click", () => toggle(false));
  const form = $("#add-tax-form");
  // The description follows the country (the API's default when left empty).
  $("#tax-country").addEventListener("input", () => {
    $("#tax-description").placeholder = taxDescription($("#tax-country").value.trim().toUpperCase());
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    await busy(form.querySelector("button[type=submit]"), async () => {
      const created = await api(orgPath("/tax_registrations"), {
        method: "POST",
        body: {
          country: $("#tax-country").value.trim().toUpperCase(), value: $("#tax-value").value.trim(),
          description: $("#tax-description").value.trim() || null,
        },
      });
      form.reset();
      toggle(false);
      notify(`${created.value} was added (${created.status}).`);
      await load();
    }, form);
  });
  await load();
}
