// The dashboard: sign-in, then the overview, task, schedule and destination screens, routed by
// the URL's hash. Plain DOM, no inline script or style, so the page runs under
// `Content-Security-Policy: default-src 'self'`. Each screen is a module: overview.js, tasks.js,
// schedules.js, forms.js, destinations.js; dom.js and frame.js hold what they share.

import { Api, ApiError, clearCredentials, loadCredentials, saveCredentials } from "./api.js";
import { destinationList } from "./destinations.js";
import { $, h } from "./dom.js";
import { clearNotice, go, notify, parseHash, prefs, show, stopRefresh, takeFlash } from "./frame.js";
import { batchDetail } from "./batches.js";
import { newSchedule, newTask } from "./forms.js";
import { overview } from "./overview.js";
import { scheduleDetail, scheduleList } from "./schedules.js";
import { taskDetail, taskList } from "./tasks.js";

const ULID = /^[0-9A-HJKMNP-TV-Z]{26}$/;
const KEY = /^[A-Za-z0-9]{64}$/;
const ID = "([0-9A-HJKMNP-TV-Z]{26})";

// The screens, tried in order; each gets the session ({api, signedOut}), the match and the
// hash's query.
const ROUTES = [
  [/^\/overview$/, (session, _, params) => overview(session, params)],
  [/^\/tasks\/new$/, (session) => newTask(session)],
  [/^\/schedules\/new$/, (session) => newSchedule(session)],
  [new RegExp(`^/tasks/${ID}$`), (session, match) => taskDetail(session, match[1])],
  [/^\/tasks$/, (session, _, params) => taskList(session, params)],
  [new RegExp(`^/batches/${ID}$`), (session, match) => batchDetail(session, match[1])],
  [
    new RegExp(`^/schedules/${ID}$`),
    (session, match, params) => scheduleDetail(session, match[1], params),
  ],
  [/^\/schedules$/, (session, _, params) => scheduleList(session, params)],
  [/^\/destinations$/, (session, _, params) => destinationList(session, params)],
];

function render() {
  stopRefresh();
  const credentials = loadCredentials();
  $("#session").hidden = !credentials;
  $("#nav").hidden = !credentials;
  if (!credentials) {
    signIn();
    return;
  }
  const session = { api: new Api(credentials), signedOut };
  $("#who").textContent = credentials.ownerId;
  const { path, params } = parseHash();
  for (const [pattern, view] of ROUTES) {
    const match = path.match(pattern);
    if (match) {
      view(session, match, params);
      return;
    }
  }
  go("/tasks");
}

/** The key stopped working (revoked, owner deleted): back to sign-in, saying why. */
function signedOut(error) {
  clearCredentials();
  notify(`Signed out: ${error.message}`);
  render();
}

// --- sign-in -----------------------------------------------------------------------------

function signIn() {
  const status = h("p", { class: "form-error", role: "alert", hidden: true });
  const ownerId = h("input", {
    id: "owner-id",
    name: "ownerId",
    required: true,
    autocomplete: "username",
    spellcheck: "false",
    maxlength: 26,
    placeholder: "01JD…",
  });
  const key = h("input", {
    id: "owner-key",
    name: "key",
    type: "password",
    required: true,
    autocomplete: "current-password",
    spellcheck: "false",
    maxlength: 64,
  });
  const submit = h("button", { type: "submit", class: "button primary", text: "Sign in" });
  const form = h(
    "form",
    { class: "card signin", novalidate: true },
    h("h1", { text: "Sign in" }),
    h("p", {
      class: "muted",
      text:
        "Use the owner id and key that POST /v1/owners/register returned. They stay in this tab only.",
    }),
    h("label", { for: "owner-id", text: "Owner id" }),
    ownerId,
    h("label", { for: "owner-key", text: "Key" }),
    key,
    status,
    submit,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const credentials = { ownerId: ownerId.value.trim(), key: key.value.trim() };
    const problem = !ULID.test(credentials.ownerId)
      ? "The owner id is a 26-character ULID."
      : !KEY.test(credentials.key)
        ? "The key is 64 letters and digits."
        : null;
    status.hidden = !problem;
    status.textContent = problem || "";
    if (problem) return;
    submit.disabled = true;
    submit.textContent = "Signing in…";
    try {
      await new Api(credentials).listTasks({ limit: 1 });
      saveCredentials(credentials);
      clearNotice();
      render();
    } catch (error) {
      status.hidden = false;
      status.textContent = error.message;
      submit.disabled = false;
      submit.textContent = "Sign in";
    }
  });
  show("Sign in", null, form);
  ownerId.focus();
}

// --- start ---------------------------------------------------------------------------------

function start() {
  const autoRefreshBox = $("#auto-refresh");
  autoRefreshBox.checked = prefs.load().autoRefresh;
  autoRefreshBox.addEventListener("change", () => {
    prefs.save({ ...prefs.load(), autoRefresh: autoRefreshBox.checked });
  });
  $("#sign-out").addEventListener("click", () => {
    clearCredentials();
    clearNotice();
    go("/tasks");
    render();
  });
  $("#confirm-cancel").addEventListener("click", () => $("#confirm").close("cancel"));
  $("#confirm-ok").addEventListener("click", () => $("#confirm").close("ok"));
  window.addEventListener("hashchange", () => {
    clearNotice();
    const flash = takeFlash();
    if (flash) notify(...flash);
    render();
  });
  window.addEventListener("unhandledrejection", (event) => {
    const error = event.reason;
    notify(error instanceof ApiError ? error.message : `Unexpected error: ${error}`);
  });
  render();
}

start();
