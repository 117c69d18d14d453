// The signed-in member's token lives in sessionStorage only: never in a URL, a cookie or the HTML.
const CURRENT = "billing-console.session";
const REMEMBERED = "billing-console.tokens";

function read(key, fallback) {
  try {
    const value = sessionStorage.getItem(key);
    return value === null ? fallback : JSON.parse(value);
  } catch {
    return fallback;
  }
}

/** The current session: {token, organizationId, role, actions} or null (actions: what `GET /me`
 * said this token may do, by action key). */
export function currentSession() {
  const value = read(CURRENT, null);
  return value && typeof value.token === "string" && typeof value.organizationId === "string" ? value : null;
}

/** Tokens pasted earlier in this tab, one per role and organization, to switch between them. */
export function rememberedSessions() {
  const value = read(REMEMBERED, []);
  return Array.isArray(value) ? value : [];
}

export function startSession(session) {
  sessionStorage.setItem(CURRENT, JSON.stringify(session));
  const others = rememberedSessions().filter(
    (s) => !(s.role === session.role && s.organizationId === session.organizationId));
  sessionStorage.setItem(REMEMBERED, JSON.stringify([session, ...others].slice(0, 6)));
}

export function forgetSession(session) {
  const others = rememberedSessions().filter((s) => s.token !== session.token);
  sessionStorage.setItem(REMEMBERED, JSON.stringify(others));
}

export function endSession() {
  sessionStorage.removeItem(CURRENT);
}
