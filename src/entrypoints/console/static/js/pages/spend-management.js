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

const SCOPES = { project: { name: "Project" }, token: { name: "API key" } };
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

const budgetState = { items: [], projects: [], tokens: new Map(), editing: null, allowed: false };

function scopeName(scope) {
  return SCOPES[scope] ? SCOPES[scope].name : scope;
}

function budgetLabel(budget) {
  return `${scopeName(budget.scope)} ${budget.scope_id}`;
}

/** How the token select names a key: its name and kind (the member it speaks for, or its scopes). */
function tokenText(token) {
  const kind = token.kind === "member" ? `member ${token.user_id}` : `service: ${token.scopes.join(", ") || "no scopes"}`;
  return `${token.name} (${kind})${token.status === "active" ? "" : `, ${token.status}`}`;
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

/** A project's id; a token's name (from GET …/api_tokens) next to its id. */
function scopeCell(budget) {
  const token = budget.scope === "token" ? budgetState.tokens.get(budget.scope_id) : null;
  const id = h("code", {}, budget.scope_id);
  return token ? h("td", {}, h("span", { class: "token-name" }, token.name), " ", id) : h("td", {}, id);
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
    h("td", {}, scopeName(budget.scope)),
    scopeCell(budget),
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

/** A project is typed or picked from the projects the API names; a token is chosen by name. */
function showScope() {
  const token = chosenScope() === "token";
  $("#budget-project-field").hidden = token;
  $("#budget-token-field").hidden = !token;
  $("#budget-scope-options").replaceChildren(...budgetState.projects.map((id) => h("option", { value: id })));
}

/** The select's options: every key of the organization, oldest first; keep `selected` when set. */
function fillTokenOptions(selected = "") {
  const select = $("#budget-token");
  const options = [...budgetState.tokens.values()].map((t) => h("option", { value: t.id }, tokenText(t)));
  if (selected && !budgetState.tokens.has(selected)) options.push(h("option", { value: selected }, selected));
  select.replaceChildren(h("option", { value: "" }, "Choose an API key"), ...options);
  select.value = selected;
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
  if (budget.scope === "token") {
    fillTokenOptions(budget.scope_id);
    $("#budget-token").disabled = true;
  } else {
    const id = $("#budget-scope-id");
    id.value = budget.scope_id;
    id.readOnly = true;
  }
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
  fillTokenOptions();
  $("#budget-token").disabled = !budgetState.allowed;
  $("#budget-form-title").textContent = "Add a budget";
  $("#budget-save").textContent = "Add budget";
  $("#budget-cancel").hidden = true;
  showScope();
}

function invalid(control, message) {
  control.setAttribute("aria-invalid", "true");
  control.focus();
  throw new Error(message);
}

/** The id the form names: the one being edited, the chosen key, or a typed project id. */
function chosenId(scope) {
  if (budgetState.editing) return budgetState.editing.scope_id;
  if (scope === "token") {
    const select = $("#budget-token");
    return select.value || invalid(select, "API key name: choose one of the organization's API keys.");
  }
  const input = $("#budget-scope-id");
  const value = input.value.trim().toLowerCase();
  return UUID.test(value) ? value
    : invalid(input, "Project ID: enter an ID such as 00000000-0000-4000-8000-0000000000a1.");
}

async function renderBudgets() {
  budgetState.allowed = can(MANAGE_SPEND_MANAGEMENT);
  const [subscriptions, tokens] = await Promise.all([listAll("/subscriptions"), listAll(orgPath("/api_tokens"))]);
  budgetState.projects = [...new Set(subscriptions.map((s) => s.project_id).filter(Boolean))];
  budgetState.tokens = new Map(tokens.map((t) => [t.id, t]));
  fillTokenOptions();
  await loadBudgets();
  const form = $("#budget-form");
  const save = $("#budget-save");
  gate(save, budgetState.allowed, reason(MANAGE_SPEND_MANAGEMENT));
  for (const control of form.querySelectorAll("input, select")) control.disabled = !budgetState.allowed;
  for (const radio of form.querySelectorAll("input[name='scope']")) radio.addEventListener("change", showScope);
  $("#budget-cancel").addEventListener("click", resetBudgetForm);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    await busy(save, async () => {
      const scope = budgetState.editing ? budgetState.editing.scope : chosenScope();
      const id = chosenId(scope);
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
