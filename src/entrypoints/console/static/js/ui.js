// DOM and formatting helpers. Text always goes in through textContent, never innerHTML.

/** `h("td", {class: "num"}, "text", childNode)`: build an element. Attributes starting with `on`
 * become listeners; `true`/`false` toggle boolean attributes; null/undefined are skipped. */
export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export const $ = (selector, root = document) => root.querySelector(selector);

/** A trash-can icon (SVG, no external asset), hidden from assistive technology. */
export function trashIcon() {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 16 16");
  svg.setAttribute("class", "trash");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  const path = document.createElementNS(ns, "path");
  path.setAttribute("d", "M6 1.5h4a.5.5 0 0 1 .5.5v1H14v1.5h-1l-.8 9.6a1 1 0 0 1-1 .9H4.8a1 1 0 0 1-1-.9L3 4.5H2V3h3.5V2a.5.5 0 0 1 .5-.5Zm-1.5 3 .75 9h5.5l.75-9h-7ZM6.5 6h1v6h-1V6Zm2 0h1v6h-1V6Z");
  svg.append(path);
  return svg;
}

// ---------------------------------------------------------------- messages

export function clearMessages() {
  $("#alert").textContent = "";
  $("#notice").textContent = "";
  for (const field of document.querySelectorAll("[aria-invalid='true']")) field.removeAttribute("aria-invalid");
}

/** Show an error in the page's assertive live region; mark the offending field if the API named it. */
export function showError(error, form) {
  const alert = $("#alert");
  alert.textContent = "";
  if (error && error.status === 401) {
    alert.append("Your token was not accepted. ", h("a", { href: `${mount()}/` }, "Sign in again"), ".");
    return;
  }
  alert.textContent = error && error.message ? error.message : String(error);
  const problem = (error && error.problem) || {};
  const fields = [problem.field, ...(Array.isArray(problem.errors) ? problem.errors.map((e) => e && e.field) : [])];
  for (const name of fields.filter(Boolean)) {
    const field = (form || document).querySelector(`[name="${CSS.escape(String(name))}"]`);
    if (field) field.setAttribute("aria-invalid", "true");
  }
}

export function notify(message) {
  $("#alert").textContent = "";
  $("#notice").textContent = message;
}

export function mount() {
  return document.body.dataset.mount || "/console";
}

// ---------------------------------------------------------------- buttons

/** Disable (or enable) a control and show why next to it, in the element its aria-describedby names. */
export function gate(control, enabled, reason) {
  control.disabled = !enabled;
  const reasonId = control.getAttribute("aria-describedby");
  const target = reasonId && document.getElementById(reasonId.split(" ")[0]);
  if (target) target.textContent = enabled ? "" : (reason || "");
  if (!enabled && reason) control.title = reason;
  else control.removeAttribute("title");
}

/** Run `action` with `button` disabled, show its error; returns the action's result or undefined. */
export async function busy(button, action, form) {
  const wasDisabled = button.disabled;
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  clearMessages();
  try {
    return await action();
  } catch (error) {
    showError(error, form);
    return undefined;
  } finally {
    button.disabled = wasDisabled;
    button.removeAttribute("aria-busy");
  }
}

// ---------------------------------------------------------------- tables

export function fillRows(table, rows, emptyText) {
  const body = table.tBodies[0];
  const columns = table.tHead.rows[0].cells.length;
  body.replaceChildren(...(rows.length ? rows : [h("tr", {}, h("td", { colspan: columns, class: "empty" }, emptyText))]));
}

// ---------------------------------------------------------------- numbers and dates

const MICROS_PER_DOLLAR = 1_000_000;

/** Micro-dollars as the console shows credits: `$12.480`, `-$0.005` (three decimals, truncated). */
export function credits(micros) {
  const value = BigInt(micros);
  const negative = value < 0n;
  const abs = negative ? -value : value;
  const whole = abs / BigInt(MICROS_PER_DOLLAR);
  const rest = (abs % BigInt(MICROS_PER_DOLLAR)) / 1000n;
  return `${negative ? "-" : ""}$${whole.toLocaleString("en-US")}.${rest.toString().padStart(3, "0")}`;
}

/** A Credits object `{micros, display}` as the API sends it (display is `$12.480`). */
export function shown(value) {
  if (value === null || value === undefined) return "—";
  return value.display || credits(value.micros);
}

/** A Money object `{cents, currency_iso}`. */
export function money(value) {
  if (!value) return "—";
  const cents = Number(value.cents);
  try {
    return new Intl.NumberFormat("en-US", { style: "currency", currency: value.currency_iso }).format(cents / 100);
  } catch {
    return `${value.currency_iso} ${(cents / 100).toFixed(2)}`;
  }
}

/** Dollars typed by a person ("12", "12.5", "1,000.25") to integer micro-dollars, exactly. */
export function dollarsToMicros(text) {
  const cleaned = String(text).trim().replace(/[$,\s]/g, "");
  if (cleaned === "") return null;
  const match = /^(\d{1,12})(?:\.(\d{0,6}))?$/.exec(cleaned);
  if (!match) return Number.NaN;
  const fraction = (match[2] || "").padEnd(6, "0");
  return Number(match[1]) * MICROS_PER_DOLLAR + Number(fraction);
}

/** Micro-dollars for an input field: "40", "12.5". */
export function microsToInput(micros) {
  if (micros === null || micros === undefined) return "";
  const whole = Math.trunc(micros / MICROS_PER_DOLLAR);
  const rest = String(Math.abs(micros % MICROS_PER_DOLLAR)).padStart(6, "0").replace(/0+$/, "");
  return rest ? `${whole}.${rest}` : String(whole);
}

const dateFormat = new Intl.DateTimeFormat("en-US", { year: "numeric", month: "short", day: "2-digit", timeZone: "UTC" });
const timeFormat = new Intl.DateTimeFormat("en-US", {
  year: "numeric", month: "short", day: "2-digit", hour: "2-digit", minute: "2-digit", hour12: false, timeZone: "UTC",
});

export function date(iso) {
  return iso ? dateFormat.format(new Date(iso)) : "—";
}

export function dateTime(iso) {
  return iso ? `${timeFormat.format(new Date(iso))} UTC` : "—";
}

export function timeElement(iso, withTime = true) {
  return iso ? h("time", { datetime: iso }, withTime ? dateTime(iso) : date(iso)) : "—";
}

/** An http(s) URL from the API (provider pages), or null: never `javascript:` or `data:`. */
export function safeUrl(value) {
  try {
    const url = new URL(String(value), location.origin);
    return url.protocol === "https:" || url.protocol === "http:" ? url.href : null;
  } catch {
    return null;
  }
}

export function shortId(id) {
  return String(id).slice(0, 8);
}
