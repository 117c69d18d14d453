// The one way the console talks to the billing API: same origin, Bearer token, JSON in and out,
// application/problem+json errors turned into ApiError. No cookies are sent (credentials: "omit").
import { currentSession } from "./session.js";

export class ApiError extends Error {
  constructor(status, problem) {
    const message = (problem && (problem.detail || problem.title)) || `The request failed (HTTP ${status}).`;
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.problem = problem || {};
    this.code = this.problem.code || null;
  }
}

function uuid4() {
  if (globalThis.crypto && typeof crypto.randomUUID === "function") return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** `/organizations/{id}{suffix}` for the signed-in organization. */
export function orgPath(suffix) {
  const session = currentSession();
  if (!session) throw new ApiError(401, { title: "Sign in first." });
  return `/organizations/${encodeURIComponent(session.organizationId)}${suffix}`;
}

function withQuery(path, query) {
  if (!query) return path;
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value !== undefined && value !== null && value !== "") params.set(key, String(value));
  }
  const text = params.toString();
  return text ? `${path}${path.includes("?") ? "&" : "?"}${text}` : path;
}

async function send(path, { method = "GET", body, query, accept = "application/json", token } = {}) {
  const session = currentSession();
  const bearer = token || (session && session.token);
  const headers = { Accept: `${accept}, application/problem+json` };
  if (bearer) headers.Authorization = `Bearer ${bearer}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && method !== "HEAD") headers["Idempotency-Key"] = uuid4();
  let response;
  try {
    response = await fetch(withQuery(path, query), {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "omit", cache: "no-store", redirect: "error",
    });
  } catch {
    throw new ApiError(0, { title: "The billing API could not be reached. Check your connection and try again." });
  }
  if (!response.ok) {
    let problem = null;
    try {
      problem = await response.json();
    } catch {
      problem = null;
    }
    throw new ApiError(response.status, problem);
  }
  return response;
}

/** Call the API and return the decoded JSON body (null for 204). */
export async function api(path, options = {}) {
  const response = await send(path, options);
  if (response.status === 204) return null;
  const text = await response.text();
  return text ? JSON.parse(text) : null;
}

/** Every item of a `{items, next_cursor}` list, following cursors up to `max` items. */
export async function listAll(path, { query = {}, max = 1000 } = {}) {
  const items = [];
  let cursor = null;
  do {
    const page = await api(path, { query: { ...query, cursor } });
    items.push(...listItems(page));
    cursor = page && page.next_cursor;
  } while (cursor && items.length < max);
  return items;
}

/** The items of a list response, whether the API wrapped it in `{items}` or not. */
export function listItems(body) {
  if (Array.isArray(body)) return body;
  return (body && Array.isArray(body.items)) ? body.items : [];
}

/** Fetch a file with the token and hand it to the browser as a download. */
export async function download(path, { query, fallbackName = "download" } = {}) {
  const response = await send(path, { query, accept: "application/pdf" });
  const blob = await response.blob();
  const disposition = response.headers.get("Content-Disposition") || "";
  const match = /filename\*?=(?:UTF-8'')?"?([^";]+)"?/i.exec(disposition);
  const name = match ? decodeURIComponent(match[1]) : fallbackName;
  const url = URL.createObjectURL(blob);
  const link = document.createElement("a");
  link.href = url;
  link.download = name;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
  return name;
}
