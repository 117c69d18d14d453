import { api } from "../api.js";
import { actionsOf } from "../permissions.js";
import { currentSession, forgetSession, rememberedSessions, startSession } from "../session.js";
import { $, busy, h, mount, showError } from "../ui.js";

function nextPage() {
  const next = new URLSearchParams(location.search).get("next");
  // Only a path inside the console: never an absolute or protocol-relative URL.
  return next && next.startsWith(`${mount()}/`) && !next.startsWith("//") ? next : `${mount()}/billing/overview`;
}

/** The token is checked against the API before it is kept: the server says which organization and
 * role it speaks for (the radio button is only a hint), and a verified login claims any guest
 * checkout made with the same email. */
async function check(candidate) {
  const me = await api("/me", { token: candidate.token });
  if (candidate.organizationId && me.organization_id !== candidate.organizationId) {
    throw new Error("This token belongs to another organization.");
  }
  candidate.organizationId = me.organization_id;
  candidate.role = me.role || "service";
  candidate.actions = actionsOf(me);
  await api(`/organizations/${encodeURIComponent(candidate.organizationId)}/billing/overview`,
    { token: candidate.token });
  if (me.role) await api("/me/claim_guest_checkouts", { method: "POST", token: candidate.token });
}

async function use(candidate) {
  await check(candidate);
  startSession(candidate);
  location.assign(nextPage());
}

function renderRemembered() {
  const list = $("#remembered");
  const current = currentSession();
  const items = rememberedSessions().map((s) => h("li", {},
    h("button", {
      type: "button", class: "button", "data-role": s.role,
      onclick: (event) => busy(event.currentTarget, () => use(s)),
    }, `Use ${s.role} token`),
    " ",
    current && current.token === s.token ? h("span", { class: "muted" }, "(current)") : null,
    " ",
    h("button", {
      type: "button", class: "button danger", "aria-label": `Forget the ${s.role} token`,
      onclick: () => { forgetSession(s); renderRemembered(); },
    }, "Forget")));
  list.replaceChildren(...(items.length ? items : [h("li", { class: "muted" }, "None yet.")]));
}

export async function render() {
  renderRemembered();
  const form = $("#sign-in-form");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const candidate = {
      token: String(data.get("token") || "").trim(),
      organizationId: String(data.get("organization_id") || "").trim(),
      role: String(data.get("role") || "member"),
    };
    if (!candidate.token) {
      showError(new Error("Enter a token."));
      return;
    }
    await busy(form.querySelector("button[type=submit]"), () => use(candidate), form);
  });
}
