// The dashboard: sign-in, the task list and a task's detail, routed by the URL's hash
// (which carries filters and task ids, never a credential). Plain DOM, no inline script or
// style, so the page runs under `Content-Security-Policy: default-src 'self'`.

import { Api, ApiError, clearCredentials, loadCredentials, saveCredentials } from "./api.js";

const STATES = ["RUNNING", "PAUSED", "SUCCESS", "ERROR", "REVOKED"];
const ORDERS = {
  createdAt: "Created",
  estimateExecutionAt: "Next attempt",
  estimateEndAt: "Ended",
};
const PAGE_SIZES = [10, 25, 50, 100];
const REFRESH_MS = 5000;
const ULID = /^[0-9A-HJKMNP-TV-Z]{26}$/;
const KEY = /^[A-Za-z0-9]{64}$/;
const PREFS_KEY = "tasks-server.prefs";

// Which actions a state allows (SPEC §1, §9.3); the server still decides, and its refusal
// is shown as it words it.
const ACTIONS = [
  { name: "pause", label: "Pause", states: ["RUNNING"] },
  { name: "resume", label: "Resume", states: ["PAUSED"] },
  { name: "execute", label: "Execute now", states: ["RUNNING"] },
  { name: "replay", label: "Replay", states: ["SUCCESS", "ERROR", "REVOKED"] },
  {
    name: "revoke",
    label: "Revoke",
    states: ["RUNNING", "PAUSED"],
    confirm: "Revoke this task? It will never run again (replay can start it afresh).",
    danger: true,
  },
  {
    name: "delete",
    label: "Delete",
    states: STATES,
    confirm: "Delete this task and its attempts? This cannot be undone.",
    danger: true,
  },
];
const DONE = {
  pause: "Paused.",
  resume: "Resumed.",
  execute: "Queued to run now.",
  replay: "Replayed: it runs again now.",
  revoke: "Revoked.",
  delete: "Deleted.",
};

// --- small DOM helpers ----------------------------------------------------------------

/** An element: `attrs` holds attributes, `class`, `text` and `on<event>` handlers. */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") el.className = value;
    else if (name === "text") el.textContent = value;
    else if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  el.append(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
  return el;
}

const $ = (selector) => document.querySelector(selector);

function badge(value, kind = "state") {
  return h("span", { class: `badge ${kind}-${value.toLowerCase()}`, text: value });
}

const absolute = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });
const relative = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });

function ago(ms) {
  const seconds = Math.round((ms - Date.now()) / 1000);
  const units = [
    ["day", 86400],
    ["hour", 3600],
    ["minute", 60],
  ];
  for (const [unit, size] of units) {
    if (Math.abs(seconds) >= size) return relative.format(Math.round(seconds / size), unit);
  }
  return relative.format(seconds, "second");
}

/** An epoch-ms instant as "3 minutes ago" with the exact time on hover; 0 is "—". */
function when(ms) {
  if (!ms) return h("span", { class: "muted", text: "—" });
  const date = new Date(ms);
  return h("time", { datetime: date.toISOString(), title: absolute.format(date), text: ago(ms) });
}

function duration(ms) {
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;
  return `${Math.round(ms / 60000)} min`;
}

/** A base64 body as text when it is UTF-8, else a note of its size. */
function decoded(base64) {
  const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes) || "(empty body)";
  } catch {
    return `(${bytes.length} bytes of binary data)`;
  }
}

// --- page frame: notices, session bar, preferences ---------------------------------------

const prefs = {
  load() {
    try {
      return { autoRefresh: true, ...JSON.parse(sessionStorage.getItem(PREFS_KEY) || "{}") };
    } catch {
      return { autoRefresh: true };
    }
  },
  save(values) {
    sessionStorage.setItem(PREFS_KEY, JSON.stringify(values));
  },
};

function notify(message, kind = "error") {
  const notice = $("#notice");
  notice.className = `notice notice-${kind}`;
  notice.replaceChildren(
    h("span", { class: "notice-text", text: message }),
    h("button", {
      type: "button",
      class: "notice-close",
      "aria-label": "Dismiss",
      text: "×",
      onclick: clearNotice,
    }),
  );
  notice.hidden = false;
}

function clearNotice() {
  $("#notice").hidden = true;
}

function errorState(error, retry) {
  return h(
    "div",
    { class: "state-box box-error", role: "alert" },
    h("p", { class: "state-title", text: "The server refused" }),
    h("p", { class: "state-message", text: error.message }),
    retry && h("button", { type: "button", class: "button", text: "Try again", onclick: retry }),
  );
}

function loadingState(text) {
  return h(
    "div",
    { class: "state-box box-loading", "aria-busy": "true" },
    h("span", { class: "spinner", "aria-hidden": "true" }),
    h("span", { text }),
  );
}

/** Asks before a destructive action, in a modal <dialog> (Escape cancels). */
function confirmAction(question, label) {
  return new Promise((resolve) => {
    const dialog = $("#confirm");
    $("#confirm-text").textContent = question;
    $("#confirm-ok").textContent = label;
    dialog.returnValue = "";
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.showModal();
  });
}

// --- the router -------------------------------------------------------------------------

let timer = null;
let api = null;
let flash = null; // a notice to show once the next view is up

function parseHash() {
  const [path, search = ""] = location.hash.replace(/^#/, "").split("?");
  return { path: path || "/tasks", params: new URLSearchParams(search) };
}

function go(path, params) {
  const search = params && [...params].length ? `?${params}` : "";
  location.hash = `#${path}${search}`;
}

// The views, tried in order. Schedules (SPEC §11.1) add their list and detail here, and a
// link in the header's nav, once the API has them.
const ROUTES = [
  [/^\/tasks\/([0-9A-HJKMNP-TV-Z]{26})$/, (match) => taskDetail(match[1])],
  [/^\/tasks$/, (_, params) => taskList(params)],
];

function render() {
  clearInterval(timer);
  timer = null;
  const credentials = loadCredentials();
  $("#session").hidden = !credentials;
  $("#nav").hidden = !credentials;
  if (!credentials) {
    api = null;
    signIn();
    return;
  }
  api = new Api(credentials);
  $("#who").textContent = credentials.ownerId;
  const { path, params } = parseHash();
  for (const [pattern, view] of ROUTES) {
    const match = path.match(pattern);
    if (match) {
      view(match, params);
      return;
    }
  }
  go("/tasks");
}

function show(title, ...content) {
  document.title = `${title} · Tasks Server`;
  $("#view").replaceChildren(...content);
}

/** Runs `load` every REFRESH_MS while auto-refresh is on and the tab is visible. */
function autoRefresh(load) {
  clearInterval(timer);
  timer = setInterval(() => {
    if (prefs.load().autoRefresh && document.visibilityState === "visible") load();
  }, REFRESH_MS);
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
  show("Sign in", form);
  ownerId.focus();
}

// --- the task list ---------------------------------------------------------------------------

function listParams(params) {
  const limit = Number(params.get("limit"));
  const offset = Number(params.get("offset"));
  const state = params.get("state");
  const order = params.get("order");
  return {
    state: STATES.includes(state) ? state : "",
    order: order in ORDERS ? order : "createdAt",
    sort: params.get("sort") === "asc" ? "asc" : "desc",
    limit: PAGE_SIZES.includes(limit) ? limit : PAGE_SIZES[0],
    offset: Number.isInteger(offset) && offset > 0 ? offset : 0,
  };
}

function select(id, label, value, options, onchange) {
  return h(
    "div",
    { class: "field" },
    h("label", { for: id, text: label }),
    h(
      "select",
      { id, onchange },
      options.map(([v, text]) => h("option", { value: v, selected: v === String(value), text })),
    ),
  );
}

function taskList(params) {
  const query = listParams(params);
  const update = (change) => {
    const next = { ...query, offset: 0, ...change };
    const search = new URLSearchParams();
    for (const [name, value] of Object.entries(next)) if (value !== "") search.set(name, value);
    go("/tasks", search);
  };
  const on = (name, cast = String) => (event) => update({ [name]: cast(event.target.value) });
  const toolbar = h(
    "div",
    { class: "toolbar", role: "group", "aria-label": "Filter and order" },
    select(
      "filter-state",
      "State",
      query.state,
      [["", "All states"], ...STATES.map((s) => [s, s])],
      on("state"),
    ),
    select("filter-order", "Order by", query.order, Object.entries(ORDERS), on("order")),
    select(
      "filter-sort",
      "Direction",
      query.sort,
      [
        ["desc", "Newest first"],
        ["asc", "Oldest first"],
      ],
      on("sort"),
    ),
    select(
      "filter-limit",
      "Per page",
      query.limit,
      PAGE_SIZES.map((n) => [String(n), String(n)]),
      on("limit", Number),
    ),
  );
  const body = h("div", { class: "list-body" }, loadingState("Loading tasks…"));
  const pager = h("nav", { class: "pager", "aria-label": "Pages" });
  const refresh = h("button", {
    type: "button",
    class: "button",
    text: "Refresh",
    onclick: () => load(),
  });
  show(
    "Tasks",
    h(
      "div",
      { class: "view-head" },
      h("h1", { text: query.state ? `${query.state} tasks` : "Tasks" }),
      refresh,
    ),
    toolbar,
    body,
    pager,
  );

  let loading = false;
  async function load() {
    if (loading) return;
    loading = true;
    body.setAttribute("aria-busy", "true");
    try {
      const rows = await api.listTasks(query);
      body.replaceChildren(rows.length ? taskTable(rows) : emptyList(query));
      pager.replaceChildren(...pagerButtons(query, rows.length, update));
    } catch (error) {
      if (error.status === 401 || error.status === 403) return signedOut(error);
      body.replaceChildren(errorState(error, load));
      pager.replaceChildren();
    } finally {
      loading = false;
      body.removeAttribute("aria-busy");
    }
  }
  load();
  autoRefresh(load);
}

function taskTable(rows) {
  const head = ["Task", "State", "Status", "Created", "Next attempt", "Ended"];
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: "tasks" },
      h("thead", {}, h("tr", {}, head.map((text) => h("th", { scope: "col", text })))),
      h(
        "tbody",
        {},
        rows.map((row) =>
          h(
            "tr",
            { "data-id": row.id },
            h(
              "td",
              { "data-label": "Task" },
              h("a", { class: "mono", href: `#/tasks/${row.id}`, text: row.id }),
              row.scheduleId && h("span", { class: "tag", text: "scheduled" }),
            ),
            h("td", { "data-label": "State" }, badge(row.state)),
            h("td", { "data-label": "Status", class: "num", text: row.statusCode || "—" }),
            h("td", { "data-label": "Created" }, when(row.createdAt)),
            h(
              "td",
              { "data-label": "Next attempt" },
              row.state === "RUNNING" ? when(row.estimateExecutionAt) : when(0),
            ),
            h("td", { "data-label": "Ended" }, when(row.estimateEndAt)),
          ),
        ),
      ),
    ),
  );
}

function emptyList(query) {
  return h(
    "div",
    { class: "state-box box-empty" },
    h("p", {
      class: "state-title",
      text: query.offset ? "No more tasks" : query.state ? `No ${query.state} tasks` : "No tasks yet",
    }),
    h("p", {
      class: "muted",
      text: query.state
        ? "Pick another state, or all states."
        : "Register one with POST /v1/queues/register and it shows up here.",
    }),
  );
}

function pagerButtons(query, count, update) {
  const first = count ? query.offset + 1 : query.offset;
  return [
    h("button", {
      type: "button",
      class: "button",
      text: "← Previous",
      disabled: query.offset === 0,
      onclick: () => update({ ...query, offset: Math.max(0, query.offset - query.limit) }),
    }),
    h("span", { class: "muted", text: count ? `${first}–${query.offset + count}` : "" }),
    h("button", {
      type: "button",
      class: "button",
      text: "Next →",
      disabled: count < query.limit,
      onclick: () => update({ ...query, offset: query.offset + query.limit }),
    }),
  ];
}

function signedOut(error) {
  clearCredentials();
  notify(`Signed out: ${error.message}`);
  render();
}

// --- a task's detail ---------------------------------------------------------------------

function taskDetail(id) {
  const content = h("div", { class: "detail" }, loadingState("Loading the task…"));
  show(
    `Task ${id}`,
    h("a", { class: "back", href: "#/tasks", text: "← All tasks" }),
    h(
      "div",
      { class: "view-head" },
      h("h1", {}, "Task ", h("code", { class: "mono", text: id })),
      h("button", { type: "button", class: "button", text: "Refresh", onclick: () => load() }),
    ),
    content,
  );

  let loading = false;
  async function load() {
    if (loading) return;
    loading = true;
    content.setAttribute("aria-busy", "true");
    try {
      const [task, config, attempts] = await Promise.all([
        api.task(id),
        api.config(id),
        api.attempts(id),
      ]);
      content.replaceChildren(...detailParts(task, config, attempts, act));
    } catch (error) {
      if (error.status === 401 || error.status === 403) return signedOut(error);
      content.replaceChildren(errorState(error, error.status === 404 ? null : load));
    } finally {
      loading = false;
      content.removeAttribute("aria-busy");
    }
  }

  async function act(action, button) {
    if (action.confirm && !(await confirmAction(action.confirm, action.label))) return;
    button.disabled = true;
    try {
      await api.act(id, action.name);
      if (action.name === "delete") {
        flash = [`Task ${id} deleted.`, "success"];
        go("/tasks");
        return;
      }
      notify(DONE[action.name], "success");
      await load();
    } catch (error) {
      notify(`${action.label} refused: ${error.message}`);
      // The task likely changed meanwhile: show it as it is now.
      if (error.status === 422) await load();
      else button.disabled = false;
    }
  }

  load();
  autoRefresh(load);
}

function detailParts(task, config, attempts, act) {
  const request = config.httpRequest || {};
  const actions = h(
    "div",
    { class: "actions", role: "toolbar", "aria-label": "Actions" },
    ACTIONS.map((action) => {
      const button = h("button", {
        type: "button",
        class: `button${action.danger ? " danger" : ""}`,
        "data-action": action.name,
        text: action.label,
        disabled: !action.states.includes(task.state),
      });
      button.addEventListener("click", () => act(action, button));
      return button;
    }),
  );
  const facts = [
    ["State", badge(task.state)],
    ["Status code", task.statusCode || h("span", { class: "muted", text: "none yet" })],
    ["Created", when(task.createdAt)],
    ["Next attempt", task.state === "RUNNING" ? when(task.estimateExecutionAt) : when(0)],
    ["Ended", when(task.estimateEndAt)],
    [
      "Retries",
      `${config.retryCount} of ${config.retryLimit}${config.retrying ? " (retrying)" : ""}`,
    ],
    ["Schedule", task.scheduleId ? h("code", { text: task.scheduleId }) : when(0)],
  ];
  const summary = h(
    "section",
    { class: "card", "aria-labelledby": "summary-title" },
    h("h2", { id: "summary-title", text: "Summary" }),
    h(
      "p",
      { class: "request-line" },
      h("span", { class: "method", text: request.method || "?" }),
      h("code", { class: "url", text: request.url || "" }),
    ),
    h(
      "dl",
      { class: "facts" },
      facts.map(([term, value]) => [h("dt", { text: term }), h("dd", {}, value)]),
    ),
    task.metadata &&
      h(
        "div",
        { class: "metadata" },
        Object.entries(task.metadata).map(([k, v]) => h("span", { class: "tag", text: `${k}: ${v}` })),
      ),
    task.response &&
      h(
        "details",
        { class: "response" },
        h("summary", { text: "Last response body" }),
        h("pre", { text: decoded(task.response) }),
      ),
  );
  const configCard = h(
    "section",
    { class: "card", "aria-labelledby": "config-title" },
    h("h2", { id: "config-title", text: "Stored request" }),
    h("p", { class: "muted", text: "As stored, with every secret shown as ***." }),
    h(
      "pre",
      { class: "config", tabindex: 0 },
      JSON.stringify({ httpRequest: config.httpRequest, config: config.config }, null, 2),
    ),
  );
  return [actions, h("div", { class: "detail-grid" }, summary, timeline(attempts)), configCard];
}

function timeline(attempts) {
  const items = attempts.map((a) =>
    h(
      "li",
      { class: `attempt is-${a.outcome.toLowerCase()}` },
      h(
        "div",
        { class: "attempt-head" },
        h("span", { class: "attempt-number", text: `#${a.attempt}` }),
        badge(a.outcome, "outcome"),
        a.statusCode ? h("span", { class: "status", text: `HTTP ${a.statusCode}` }) : null,
        when(a.startedAt),
      ),
      h(
        "p",
        { class: "attempt-meta" },
        `${a.latenessMs} ms late · `,
        a.finishedAt ? `took ${duration(a.durationMs)}` : "in flight",
      ),
      a.error && h("p", { class: "attempt-error", text: a.error }),
      a.response &&
        h(
          "details",
          { class: "response" },
          h("summary", { text: "Response body" }),
          h("pre", { text: decoded(a.response) }),
        ),
    ),
  );
  return h(
    "section",
    { class: "card", "aria-labelledby": "attempts-title" },
    h("h2", { id: "attempts-title", text: `Attempts (${attempts.length})` }),
    items.length
      ? h("ol", { class: "timeline" }, items)
      : h("p", { class: "muted state-empty-inline", text: "No attempt yet: it has not been due." }),
  );
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
    if (flash) notify(...flash);
    flash = null;
    render();
  });
  window.addEventListener("unhandledrejection", (event) => {
    const error = event.reason;
    notify(error instanceof ApiError ? error.message : `Unexpected error: ${error}`);
  });
  render();
}

start();
