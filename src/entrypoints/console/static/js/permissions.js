// What the viewer may do, to disable buttons up front. The server checks every request anyway;
// this only spares people a click that would be refused. The console keeps no copy of the
// permission matrix: sign-in stores the API's own answer (`GET /me` → `actions`, each allowed or
// not with the API's explanation), so a button is enabled exactly when the API would accept.
import { currentSession } from "./session.js";

export const UPDATE_BILLING = "update_billing";
export const ADD_CREDITS = "add_credits";
export const REQUEST_REFUND = "request_refund";
export const MANAGE_AUTO_RECHARGE = "manage_auto_recharge";
export const MANAGE_LOW_BALANCE_ALERTS = "manage_low_balance_alerts";
export const ACCESS_BILLING_PORTAL = "access_billing_portal";
export const SUBSCRIBE_TO_PLAN = "subscribe_to_plan";
export const MANAGE_SPEND_MANAGEMENT = "manage_spend_management";

const UNKNOWN = "Sign in again to see what your role may do";

/** The `actions` of a `GET /me` answer, by key: what a session keeps. */
export function actionsOf(me) {
  const byKey = {};
  for (const action of me.actions || []) byKey[action.key] = { allowed: action.allowed, message: action.message };
  return byKey;
}

function lookup(action) {
  const session = currentSession();
  return (session && session.actions && session.actions[action]) || null;
}

export function can(action) {
  const found = lookup(action);
  return Boolean(found && found.allowed);
}

export function reason(action) {
  const found = lookup(action);
  return (found && found.message) || UNKNOWN;
}
