// The task screens: the list (state filter, ordering, paging) and a task's detail (summary,
// redacted config, attempts timeline, actions).

import {
  OUTCOMES,
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
  labelTags,
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
  confirmAction,
  flashNext,
  go,
  goWith,
  keepLoaded,
  notify,
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
  const outcome = params.get("outcome");
  const statusCode = params.get("statusCode") || "";
  return {
    state: STATES.includes(state) ? state : "",
    order: order in ORDERS ? order : "createdAt",
    sort: params.get("sort") === "asc" ? "asc" : "desc",
    label: params.get("label") || "",
    outcome: OUTCOMES.includes(outcome) ? outcome : "",
    statusCode: /^\d{1,3}$/.test(statusCode) ? statusCode : "",
    ...pageParams(params),
  };
}

/** A text filter applied on Enter or when it loses focus (not on every key). */
function textFilter(id, label, value, placeholder, apply) {
  const input = h("input", { id, type: "search", value, placeholder, spellcheck: "false" });
  const done = () => input.value.trim() !== value && apply(input.value.trim());
  input.addEventListener("change", done);
  return h("div", { class: "field" }, h("label", { for: id, text: label }), input);
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
    select(
      "filter-outcome",
      "Last outcome",
      query.outcome,
      [["", "Any outcome"], ...OUTCOMES.map((o) => [o, o])],
      on("outcome"),
    ),
    textFilter("filter-status", "Status code", query.statusCode, "e.g. 503", (statusCode) =>
      update({ statusCode }),
    ),
    textFilter("filter-label", "Label", query.label, "key:value", (label) => update({ label })),
  );
  const selected = new Set();
  const bulkBar = bulkActions(session, selected, () => load());
  const body = h("div", { class: "list-body" }, loadingState("Loading tasks…"));
  const pager = h("nav", { class: "pager", "aria-label": "Pages" });
  show(
    "Tasks",
    "tasks",
    viewHead(h("h1", { text: query.state ? `${query.state} tasks` : "Tasks" }), () => load()),
    h("p", {}, h("a", { class: "button primary", href: "#/tasks/new", text: "New task" })),
    toolbar,
    bulkBar,
    body,
    pager,
  );
  const load = keepLoaded(
    session,
    body,
    async () => {
      const rows = await session.api.listTasks(query);
      for (const id of [...selected]) if (!rows.some((row) => row.id === id)) selected.delete(id);
      const columns = [selectColumn(selected, bulkBar), ...TASK_COLUMNS];
      body.replaceChildren(rows.length ? dataTable("tasks", columns, rows) : emptyList(query));
      pager.replaceChildren(...pagerButtons(query, rows.length, update));
      bulkBar.refresh();
    },
    { failed: () => pager.replaceChildren() },
  );
}

// --- bulk actions (POST /v1/queues/bulk), each asked first ------------------------------------

const BULK = [
  {
    action: "replay",
    label: "Replay failed",
    state: "ERROR",
    confirm: "Replay every ERROR task (up to 1000)? Each runs again now with a fresh retry budget.",
  },
  {
    action: "revoke",
    label: "Revoke selected",
    confirm: (n) => `Revoke ${n} selected task(s)? They never run again.`,
  },
  {
    action: "delete",
    label: "Delete selected",
    confirm: (n) => `Delete ${n} selected task(s) and their attempts? This cannot be undone.`,
  },
];

function bulkActions(session, selected, reload) {
  const count = h("span", { class: "muted bulk-count" });
  const buttons = BULK.map((item) =>
    h("button", {
      type: "button",
      class: `button${item.action === "replay" ? "" : " danger"}`,
      "data-bulk": item.action,
      text: item.label,
      onclick: async (event) => {
        const ids = [...selected];
        const question = item.state ? item.confirm : item.confirm(ids.length);
        if (!(await confirmAction(question, item.label))) return;
        event.target.disabled = true;
        try {
          const body = item.state
            ? { action: item.action, state: item.state }
            : { action: item.action, ids };
          const out = await session.api.bulk(body);
          const refused = out.refused.map((r) => `${r.id}: ${r.message}`).join("; ");
          notify(
            `${item.label}: ${out.done.length} done` + (refused ? `, refused ${refused}` : "."),
            out.refused.length ? "error" : "success",
          );
          selected.clear();
        } catch (error) {
          notify(`${item.label} refused: ${error.message}`);
        }
        await reload();
      },
    }),
  );
  const bar = h("div", { class: "actions bulk", role: "toolbar", "aria-label": "Bulk actions" }, buttons, count);
  bar.refresh = () => {
    count.textContent = selected.size ? `${selected.size} selected` : "Select tasks to act on several";
    for (const button of buttons) {
      if (button.dataset.bulk !== "replay") button.disabled = selected.size === 0;
    }
  };
  bar.refresh();
  return bar;
}

function selectColumn(selected, bulkBar) {
  return [
    "Select",
    (row) =>
      h("input", {
        type: "checkbox",
        class: "row-select",
        "aria-label": `Select ${row.id}`,
        checked: selected.has(row.id),
        onchange: (event) => {
          if (event.target.checked) selected.add(row.id);
          else selected.delete(row.id);
          bulkBar.refresh();
        },
      }),
    { class: "select" },
  ];
}

const TASK_COLUMNS = [
  [
    "Task",
    (row) => [
      idLink("tasks", row.id),
      row.scheduleId && h("span", { class: "tag", text: "scheduled" }),
    ],
  ],
  [
    "Request",
    (row) =>
      row.method
        ? h(
            "span",
            { class: "request-cell" },
            h("span", { class: "method", text: row.method }),
            h("code", { class: "url", title: row.target, text: row.target }),
          )
        : h("span", { class: "muted", text: "—" }),
  ],
  ["Labels", (row) => labelTags(row.labels) || h("span", { class: "muted", text: "—" })],
  ["State", (row) => badge(row.state)],
  ["Status", (row) => String(row.statusCode || "—"), { class: "num" }],
  ["Created", (row) => when(row.createdAt)],
  [
    "Due / ended",
    (row) => when(row.state === "RUNNING" ? row.estimateExecutionAt : row.estimateEndAt),
  ],
];

function emptyList(query) {
  const filtered = query.label || query.outcome || query.statusCode;
  return emptyState(
    query.offset
      ? "No more tasks"
      : query.state
        ? `No ${query.state} tasks`
        : filtered
          ? "No task matches these filters"
          : "No tasks yet",
    query.state || filtered
      ? "Pick another state or clear a filter."
      : "Register one with New task (or POST /v1/queues/register) and it shows up here.",
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
    labelTags(task.labels),
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

// Why a task has no attempt, as its state tells it.
const NO_ATTEMPT = {
  RUNNING: "No attempt yet: it has not been due.",
  PAUSED: "No attempt yet: it was paused before it was due. Resume it to run it.",
  REVOKED: "No attempt: it was revoked before it was due, and never runs (replay starts it afresh).",
  SUCCESS: "No attempt was recorded.",
  ERROR: "No attempt was made: it ended without being sent.",
  WAITING: "No attempt yet: it waits for the tasks it depends on.",
};

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
      : h("p", { class: "muted state-empty-inline", text: NO_ATTEMPT[state] || NO_ATTEMPT.RUNNING }),
  );
}
