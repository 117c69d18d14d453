// What the viewer's role may do, to disable buttons up front. The server checks every request
// anyway; this only spares people a click that would be refused. Explanations are the API's.
import { currentSession } from "./session.js";

export const UPDATE_BILLING = "update_billing";
export const ADD_CREDITS = "add_credits";
export const REQUEST_REFUND = "request_refund";
export const MANAGE_LOW_BALANCE_ALERTS = "manage_low_balance_alerts";
export const ACCESS_BILLING_PORTAL = "access_billing_portal";
export const SUBSCRIBE_TO_PLAN = "subscribe_to_plan";
export const MANAGE_SPEND_MANAGEMENT = "manage_spend_management";

// The seed's matrix and the API's role presets (billing:update for owners).
const ROLE_ACTIONS = {
  "primary-owner": [
    UPDATE_BILLING, ADD_CREDITS, REQUEST_REFUND, MANAGE_LOW_BALANCE_ALERTS, ACCESS_BILLING_PORTAL, SUBSCRIBE_TO_PLAN,
    MANAGE_SPEND_MANAGEMENT,
  ],
  owner: [UPDATE_BILLING, ADD_CREDITS, REQUEST_REFUND],
  member: [],
};

const REASONS = {
  [UPDATE_BILLING]: "Your role can view billing but not change it",
  [ADD_CREDITS]: "Your role can view billing but not add credits",
  [REQUEST_REFUND]: "Your role can view billing but not request refunds",
  [MANAGE_LOW_BALANCE_ALERTS]: "Only the primary owner can manage low-balance alerts",
  [ACCESS_BILLING_PORTAL]: "Only the primary owner can access the billing portal",
  [SUBSCRIBE_TO_PLAN]: "Only the primary owner can subscribe to a plan",
  [MANAGE_SPEND_MANAGEMENT]: "Only the primary owner can manage spend management",
};

export function can(action) {
  const session = currentSession();
  const role = (session && session.role) || "member";
  return (ROLE_ACTIONS[role] || []).includes(action);
}

export function reason(action) {
  return REASONS[action];
}
