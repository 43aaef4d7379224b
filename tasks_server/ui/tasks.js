// The task screens: the list (state filter, ordering, paging) and a task's detail (summary,
// redacted config, attempts timeline, actions).

import {
  actionBar,
  badge,
  configCard,
  decoded,
  duration,
  emptyState,
  errorState,
  facts,
  h,
  idLink,
  loadingState,
  metadataTags,
  pagerButtons,
  requestLine,
  select,
  when,
} from "./dom.js";
import {
  PAGE_SIZES,
  autoRefresh,
  flashNext,
  go,
  goWith,
  pageParams,
  perform,
  show,
  signedOutBy,
} from "./frame.js";

export const STATES = ["RUNNING", "PAUSED", "SUCCESS", "ERROR", "REVOKED"];
const ORDERS = {
  createdAt: "Created",
  estimateExecutionAt: "Next attempt",
  estimateEndAt: "Ended",
};

// Which actions a state allows (SPEC §1, §9.3); the server still decides, and its refusal
// is shown as it words it.
const ACTIONS = [
  { name: "pause", label: "Pause", states: ["RUNNING"], done: "Paused." },
  { name: "resume", label: "Resume", states: ["PAUSED"], done: "Resumed." },
  { name: "execute", label: "Execute now", states: ["RUNNING"], done: "Queued to run now." },
  {
    name: "replay",
    label: "Replay",
    states: ["SUCCESS", "ERROR", "REVOKED"],
    done: "Replayed: it runs again now.",
  },
  {
    name: "revoke",
    label: "Revoke",
    states: ["RUNNING", "PAUSED"],
    confirm: "Revoke this task? It will never run again (replay can start it afresh).",
    done: "Revoked.",
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

// --- the task list ---------------------------------------------------------------------------

function listParams(params) {
  const state = params.get("state");
  const order = params.get("order");
  return {
    state: STATES.includes(state) ? state : "",
    order: order in ORDERS ? order : "createdAt",
    sort: params.get("sort") === "asc" ? "asc" : "desc",
    ...pageParams(params),
  };
}

export function taskList(session, params) {
  const query = listParams(params);
  const update = (change) => goWith("/tasks", { ...query, offset: 0, ...change });
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
    "tasks",
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
      const rows = await session.api.listTasks(query);
      body.replaceChildren(rows.length ? taskTable(rows) : emptyList(query));
      pager.replaceChildren(...pagerButtons(query, rows.length, update));
    } catch (error) {
      if (signedOutBy(error)) return session.signedOut(error);
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
              idLink("tasks", row.id),
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
  return emptyState(
    query.offset ? "No more tasks" : query.state ? `No ${query.state} tasks` : "No tasks yet",
    query.state
      ? "Pick another state, or all states."
      : "Register one with POST /v1/queues/register and it shows up here.",
  );
}

// --- a task's detail ---------------------------------------------------------------------

export function taskDetail(session, id) {
  const content = h("div", { class: "detail" }, loadingState("Loading the task…"));
  show(
    `Task ${id}`,
    "tasks",
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
        session.api.task(id),
        session.api.config(id),
        session.api.attempts(id),
      ]);
      content.replaceChildren(...detailParts(task, config, attempts, act));
    } catch (error) {
      if (signedOutBy(error)) return session.signedOut(error);
      content.replaceChildren(errorState(error, error.status === 404 ? null : load));
    } finally {
      loading = false;
      content.removeAttribute("aria-busy");
    }
  }

  function act(action, button) {
    return perform(action, button, {
      run: (name) => session.api.act(id, name),
      load,
      deleted: () => {
        flashNext(`Task ${id} deleted.`);
        go("/tasks");
      },
    });
  }

  load();
  autoRefresh(load);
}

function detailParts(task, config, attempts, act) {
  const summary = h(
    "section",
    { class: "card", "aria-labelledby": "summary-title" },
    h("h2", { id: "summary-title", text: "Summary" }),
    requestLine(config.httpRequest || {}),
    facts([
      ["State", badge(task.state)],
      ["Status code", task.statusCode || h("span", { class: "muted", text: "none yet" })],
      ["Created", when(task.createdAt)],
      ["Next attempt", task.state === "RUNNING" ? when(task.estimateExecutionAt) : when(0)],
      ["Ended", when(task.estimateEndAt)],
      [
        "Retries",
        `${config.retryCount} of ${config.retryLimit}${config.retrying ? " (retrying)" : ""}`,
      ],
      ["Schedule", task.scheduleId ? idLink("schedules", task.scheduleId) : when(0)],
    ]),
    metadataTags(task.metadata),
    task.response &&
      h(
        "details",
        { class: "response" },
        h("summary", { text: "Last response body" }),
        h("pre", { text: decoded(task.response) }),
      ),
  );
  return [
    actionBar(ACTIONS, task.state, act),
    h("div", { class: "detail-grid" }, summary, timeline(attempts)),
    configCard(config, "As stored, with every secret shown as ***."),
  ];
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
