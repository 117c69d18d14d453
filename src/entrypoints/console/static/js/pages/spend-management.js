import { api, listAll, listItems, orgPath } from "../api.js";
import { MANAGE_SPEND_MANAGEMENT, can, reason } from "../permissions.js";
import {
  $, busy, credits, dollarsToMicros, fillRows, gate, h, microsToInput, notify, shown, timeElement, trashIcon,
} from "../ui.js";

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
  if (micros !== null && !Number.isSafeInteger(micros)) {
    input.setAttribute("aria-invalid", "true");
    input.focus();
    throw new Error(`${label}: enter a dollar amount such as 40 or 12.50.`);
  }
  return micros;
}

// ---------------------------------------------------------------- project and API key budgets (ADR 0017)

const SCOPES = {
  project: {
    name: "Project", idLabel: "Project ID",
    hint: "Pick a project your product subscriptions name, or enter the ID of any project your usage reports.",
  },
  token: {
    name: "API key", idLabel: "API key ID",
    hint: "The ID of one of the organization's API keys, never its secret. Keys that already have a budget are suggested.",
  },
};
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

const budgetState = { items: [], projects: [], editing: null, allowed: false };

function budgetLabel(budget) {
  return `${SCOPES[budget.scope] ? SCOPES[budget.scope].name : budget.scope} ${budget.scope_id}`;
}

function cap(micros) {
  return micros === null || micros === undefined ? "No cap" : credits(micros);
}

/** The API's verdict (`reached`, the cap spent + held already reaches), never recomputed here. */
function budgetStatus(budget) {
  const reached = budget.reached;
  if (!reached) return h("span", { class: "badge green" }, "Open");
  const period = reached.period === "day" ? "Daily" : "Monthly";
  return h("span", {}, h("span", { class: "badge red" }, `${period} budget reached`), " ",
    h("span", { class: "hint" }, "until ", timeElement(reached.retry_at)));
}

function budgetRow(budget) {
  const label = budgetLabel(budget);
  const why = budgetState.allowed ? null : reason(MANAGE_SPEND_MANAGEMENT);
  const edit = h("button", { type: "button", class: "button", "aria-label": `Edit the budget of ${label}`, title: why },
    "Edit");
  edit.disabled = !budgetState.allowed;
  edit.addEventListener("click", () => startEditing(budget));
  const remove = h("button", {
    type: "button", class: "button icon danger", "aria-label": `Delete the budget of ${label}`,
    title: why || `Delete the budget of ${label}`,
  }, trashIcon());
  remove.disabled = !budgetState.allowed;
  remove.addEventListener("click", () => busy(remove, async () => {
    if (!window.confirm(`Delete the budget of ${label}? Its usage is then capped by the organization's budget alone.`)) {
      return;
    }
    await api(budgetPath(budget.scope, budget.scope_id), { method: "DELETE" });
    if (budgetState.editing && budgetState.editing.scope === budget.scope
        && budgetState.editing.scope_id === budget.scope_id) resetBudgetForm();
    await loadBudgets();
    notify(`The budget of ${label} was deleted.`);
  }));
  return h("tr", { dataset: { scope: budget.scope, scopeId: budget.scope_id } },
    h("td", {}, SCOPES[budget.scope] ? SCOPES[budget.scope].name : budget.scope),
    h("td", {}, h("code", {}, budget.scope_id)),
    h("td", { class: "num" }, cap(budget.daily_micros)),
    h("td", { class: "num" }, cap(budget.monthly_micros)),
    h("td", { class: "num" }, credits(budget.spent_today_micros)),
    h("td", { class: "num" }, credits(budget.spent_month_micros)),
    h("td", { class: "num" }, credits(budget.held_micros)),
    h("td", {}, budgetStatus(budget)),
    h("td", {}, h("div", { class: "row-actions" }, edit, remove)));
}

function budgetPath(scope, scopeId) {
  return orgPath(`/spend/budgets/${encodeURIComponent(scope)}/${encodeURIComponent(scopeId)}`);
}

function chosenScope() {
  const checked = document.querySelector("#budget-form input[name='scope']:checked");
  return checked ? checked.value : "project";
}

/** The scope's label, hint and suggestions: projects the API names, tokens already budgeted. */
function showScope() {
  const scope = chosenScope();
  $("#budget-scope-id-label").textContent = SCOPES[scope].idLabel;
  $("#budget-scope-id-hint").textContent = SCOPES[scope].hint;
  const ids = scope === "project" ? budgetState.projects
    : budgetState.items.filter((b) => b.scope === "token").map((b) => b.scope_id);
  $("#budget-scope-options").replaceChildren(...[...new Set(ids)].map((id) => h("option", { value: id })));
}

async function loadBudgets() {
  budgetState.items = listItems(await api(orgPath("/spend/budgets")));
  fillRows($("#budgets"), budgetState.items.map(budgetRow), "No project or API key budgets yet.");
  showScope();
}

function startEditing(budget) {
  budgetState.editing = { scope: budget.scope, scope_id: budget.scope_id };
  for (const radio of document.querySelectorAll("#budget-form input[name='scope']")) {
    radio.checked = radio.value === budget.scope;
    radio.disabled = true;
  }
  showScope();
  const id = $("#budget-scope-id");
  id.value = budget.scope_id;
  id.readOnly = true;
  $("#budget-daily").value = microsToInput(budget.daily_micros);
  $("#budget-monthly").value = microsToInput(budget.monthly_micros);
  $("#budget-form-title").textContent = `Change the budget of ${budgetLabel(budget)}`;
  $("#budget-save").textContent = "Save budget";
  $("#budget-cancel").hidden = false;
  $("#budget-daily").focus();
}

function resetBudgetForm() {
  budgetState.editing = null;
  $("#budget-form").reset();
  for (const radio of document.querySelectorAll("#budget-form input[name='scope']")) radio.disabled = !budgetState.allowed;
  $("#budget-scope-id").readOnly = false;
  $("#budget-form-title").textContent = "Add a budget";
  $("#budget-save").textContent = "Add budget";
  $("#budget-cancel").hidden = true;
  showScope();
}

function scopeId(input, scope) {
  const value = input.value.trim().toLowerCase();
  if (!UUID.test(value)) {
    input.setAttribute("aria-invalid", "true");
    input.focus();
    throw new Error(`${SCOPES[scope].idLabel}: enter an ID such as 00000000-0000-4000-8000-0000000000a1.`);
  }
  return value;
}

async function renderBudgets() {
  budgetState.allowed = can(MANAGE_SPEND_MANAGEMENT);
  const subscriptions = await listAll("/subscriptions");
  budgetState.projects = [...new Set(subscriptions.map((s) => s.project_id).filter(Boolean))];
  await loadBudgets();
  const form = $("#budget-form");
  const save = $("#budget-save");
  gate(save, budgetState.allowed, reason(MANAGE_SPEND_MANAGEMENT));
  for (const input of form.querySelectorAll("input")) input.disabled = !budgetState.allowed;
  for (const radio of form.querySelectorAll("input[name='scope']")) radio.addEventListener("change", showScope);
  $("#budget-cancel").addEventListener("click", resetBudgetForm);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    await busy(save, async () => {
      const scope = chosenScope();
      const id = scopeId($("#budget-scope-id"), scope);
      const body = {
        daily_micros: amount($("#budget-daily"), "Daily budget"),
        monthly_micros: amount($("#budget-monthly"), "Monthly budget"),
      };
      const existed = budgetState.items.some((b) => b.scope === scope && b.scope_id === id);
      const saved = await api(budgetPath(scope, id), { method: "PUT", body });
      resetBudgetForm();
      await loadBudgets();
      notify(`${existed ? "Saved" : "Added"} the budget of ${budgetLabel(saved)}.`);
    }, form);
  });
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
  await renderBudgets();
}
