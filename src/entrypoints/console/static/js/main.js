// Entry point of every console page: check the session, then run the page's module.
import { currentSession, endSession } from "./session.js";
import { $, mount, showError } from "./ui.js";

const page = document.body.dataset.page;
const session = currentSession();

function showSession() {
  $("#session-role").textContent = session.role || "member";
  $("#session-org").textContent = session.organizationId;
  $("#session").hidden = false;
  $("#sign-out").addEventListener("click", () => {
    endSession();
    location.assign(`${mount()}/`);
  });
}

async function run() {
  if (page !== "sign-in" && !session) {
    const next = new URLSearchParams({ next: location.pathname });
    location.replace(`${mount()}/?${next}`);
    return;
  }
  if (session) showSession();
  try {
    const module = await import(`./pages/${page}.js`);
    await module.render(session);
  } catch (error) {
    showError(error);
  } finally {
    document.body.dataset.ready = "true";
  }
}

run();
