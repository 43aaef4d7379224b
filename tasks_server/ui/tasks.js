// The task screens: the list (state filter, ordering, paging) and a task's detail (summary,
// redacted config, attempts timeline, actions).

import {
  actionBar,
  badge,
  configCard,
  dataTable,
  decoded,
  duration,
  emptyState,
  facts,
  h,
  idLink,
  loadingState,
  metadataTags,
  pagerButtons,
  requestLine,
  select,
  viewHead,
  when,
} from "./dom.js";
import {
  PAGE_SIZES,
  flashNext,
  go,
  goWith,
  keepLoaded,
  pageParams,
  perform,
  show,
} from "./frame.js";

export const STATES = ["RUNNING", "PAUSED", "WAITING", "SUCCESS", "ERROR", "REVOKED"];
const ORDERS = {
  createdAt: "Created",
  estimateExecutionAt: "Next attempt",
  estimateEndAt: "Ended",
};

// Which actions a state allows (SPEC §1, §9.3); the server still decides, and its refusal
// is shown as it words it.
const ACTIONS = [
  { name: "pause", label: "Pause", states: ["RUNNING", "WAITING"], done: "Paused." },
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
    states: ["RUNNING", "PAUSED", "WAITING"],
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
  show(
    "Tasks",
    "tasks",
    viewHead(h("h1", { text: query.state ? `${query.state} tasks` : "Tasks" }), () => load()),
    toolbar,
    body,
    pager,
  );
  const load = keepLoaded(
    session,
    body,
    async () => {
      const rows = await session.api.listTasks(query);
      body.replaceChildren(rows.length ? dataTable("tasks", TASK_COLUMNS, rows) : emptyList(query));
      pager.replaceChildren(...pagerButtons(query, rows.length, update));
    },
    { failed: () => pager.replaceChildren() },
  );
}

const TASK_COLUMNS = [
  [
    "Task",
    (row) => [
      idLink("tasks", row.id),
      row.scheduleId && h("span", { class: "tag", text: "scheduled" }),
    ],
  ],
  ["State", (row) => badge(row.state)],
  ["Status", (row) => String(row.statusCode || "—"), { class: "num" }],
  ["Created", (row) => when(row.createdAt)],
  ["Next attempt", (row) => (row.state === "RUNNING" ? when(row.estimateExecutionAt) : when(0))],
  ["Ended", (row) => when(row.estimateEndAt)],
];

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
    viewHead(h("h1", {}, "Task ", h("code", { class: "mono", text: id })), () => load()),
    content,
  );
  const load = keepLoaded(
    session,
    content,
    async () => {
      const [task, config, attempts] = await Promise.all([
        session.api.task(id),
        session.api.config(id),
        session.api.attempts(id),
      ]);
      content.replaceChildren(...detailParts(task, config, attempts, act));
    },
    { final: (error) => error.status === 404 },
  );

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
      ["Next attempt", nextAttempt(task)],
      ["Ended", when(task.estimateEndAt)],
      [
        "Retries",
        `${config.retryCount} of ${config.retryLimit}${config.retrying ? " (retrying)" : ""}`,
      ],
      ["Schedule", task.scheduleId ? idLink("schedules", task.scheduleId) : when(0)],
      ...dependencyFacts(task),
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
    h("div", { class: "detail-grid" }, summary, timeline(attempts, task.state)),
    configCard(config, "As stored, with every secret shown as ***."),
  ];
}

function nextAttempt(task) {
  if (task.state === "WAITING") {
    return h("span", { class: "muted", text: "once the tasks it waits for have ended" });
  }
  return task.state === "RUNNING" ? when(task.estimateExecutionAt) : when(0);
}

/** A workflow task's batch, the tasks it waits for and those waiting for it (SPEC §17). */
function dependencyFacts(task) {
  const facts = [];
  if (task.batchId) {
    const label = task.ref ? `${task.ref} in ` : "";
    facts.push([
      "Batch",
      h("span", {}, label, h("a", { class: "mono", href: `#/batches/${task.batchId}`, text: task.batchId })),
    ]);
  }
  const links = (ids) => h("span", { class: "id-list" }, ids.map((id) => idLink("tasks", id)));
  if (task.dependencies?.length) {
    facts.push(["Waits for", links(task.dependencies.map((dependency) => dependency.id))]);
  }
  if (task.dependents?.length) facts.push(["Waited for by", links(task.dependents)]);
  return facts;
}

function timeline(attempts, state) {
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
      : h("p", {
          class: "muted state-empty-inline",
          text:
            state === "WAITING"
              ? "No attempt yet: it waits for the tasks it depends on."
              : "No attempt yet: it has not been due.",
        }),
  );
}
