// The schedule screens (SPEC §11.1): the list, and a schedule's detail with its redacted
// request, the tasks it fired and the pause / resume / delete actions. Creating one is left
// to the API and the CLI.

import {
  actionBar,
  badge,
  configCard,
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

const ACTIONS = [
  {
    name: "pause",
    label: "Pause",
    states: ["ACTIVE"],
    done: "Paused: it fires no more until resumed.",
  },
  {
    name: "resume",
    label: "Resume",
    states: ["PAUSED"],
    done: "Resumed: it fires again from its next time.",
  },
  {
    name: "delete",
    label: "Delete",
    states: ["ACTIVE", "PAUSED"],
    confirm: "Delete this schedule? It stops firing; the tasks it registered stay.",
    danger: true,
  },
];

/** The cron expression, with the time zone it is read in. */
function cronOf(schedule) {
  return [
    h("code", { class: "cron", text: schedule.cron }),
    h("span", { class: "muted zone", text: schedule.timezone }),
  ];
}

/** The next fire time: none while paused. */
function nextRun(schedule) {
  return schedule.state === "ACTIVE"
    ? when(schedule.nextRunAt)
    : h("span", { class: "muted", text: "paused" });
}

// --- the schedule list -----------------------------------------------------------------------

export function scheduleList(session, params) {
  const query = pageParams(params);
  const update = (change) => goWith("/schedules", { ...query, offset: 0, ...change });
  const body = h("div", { class: "list-body" }, loadingState("Loading schedules…"));
  const pager = h("nav", { class: "pager", "aria-label": "Pages" });
  show(
    "Schedules",
    "schedules",
    h(
      "div",
      { class: "view-head" },
      h("h1", { text: "Schedules" }),
      h("button", { type: "button", class: "button", text: "Refresh", onclick: () => load() }),
    ),
    h(
      "div",
      { class: "toolbar", role: "group", "aria-label": "Paging" },
      select(
        "filter-limit",
        "Per page",
        query.limit,
        PAGE_SIZES.map((n) => [String(n), String(n)]),
        (event) => update({ limit: Number(event.target.value) }),
      ),
    ),
    body,
    pager,
  );

  let loading = false;
  async function load() {
    if (loading) return;
    loading = true;
    body.setAttribute("aria-busy", "true");
    try {
      const rows = await session.api.listSchedules(query);
      body.replaceChildren(
        rows.length
          ? scheduleTable(rows)
          : emptyState(
              query.offset ? "No more schedules" : "No schedules yet",
              query.offset
                ? "Go back a page."
                : "Create one with POST /v1/schedules (or tasks schedule add) and it shows up here.",
            ),
      );
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

function scheduleTable(rows) {
  const head = ["Schedule", "State", "Cron", "Next run", "Last run", "Last task"];
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: "schedules" },
      h("thead", {}, h("tr", {}, head.map((text) => h("th", { scope: "col", text })))),
      h(
        "tbody",
        {},
        rows.map((row) =>
          h(
            "tr",
            { "data-id": row.id },
            h("td", { "data-label": "Schedule" }, idLink("schedules", row.id)),
            h("td", { "data-label": "State" }, badge(row.state)),
            h("td", { "data-label": "Cron" }, h("span", { class: "cron-cell" }, cronOf(row))),
            h("td", { "data-label": "Next run" }, nextRun(row)),
            h("td", { "data-label": "Last run" }, when(row.lastRunAt)),
            h(
              "td",
              { "data-label": "Last task" },
              row.lastQueueId ? idLink("tasks", row.lastQueueId) : when(0),
            ),
          ),
        ),
      ),
    ),
  );
}

// --- a schedule's detail -------------------------------------------------------------------

export function scheduleDetail(session, id, params) {
  const page = pageParams(params);
  const content = h("div", { class: "detail" }, loadingState("Loading the schedule…"));
  show(
    `Schedule ${id}`,
    "schedules",
    h("a", { class: "back", href: "#/schedules", text: "← All schedules" }),
    h(
      "div",
      { class: "view-head" },
      h("h1", {}, "Schedule ", h("code", { class: "mono", text: id })),
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
      const [schedule, config, fired] = await Promise.all([
        session.api.schedule(id),
        session.api.scheduleConfig(id),
        session.api.listTasks({ scheduleId: id, order: "createdAt", sort: "desc", ...page }),
      ]);
      content.replaceChildren(
        actionBar(ACTIONS, schedule.state, act),
        h(
          "div",
          { class: "detail-grid" },
          summaryCard(schedule, config),
          firedCard(schedule, fired, page, (change) =>
            goWith(`/schedules/${id}`, { ...page, ...change }),
          ),
        ),
        configCard(config, "What each fire registers, with every secret shown as ***."),
      );
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
      run: (name) => session.api.actOnSchedule(id, name),
      load,
      deleted: () => {
        flashNext(`Schedule ${id} deleted; the tasks it registered stay.`);
        go("/schedules");
      },
    });
  }

  load();
  autoRefresh(load);
}

function summaryCard(schedule, config) {
  return h(
    "section",
    { class: "card", "aria-labelledby": "summary-title" },
    h("h2", { id: "summary-title", text: "Summary" }),
    requestLine(config.httpRequest || {}),
    facts([
      ["State", badge(schedule.state)],
      ["Cron", h("code", { class: "cron", text: schedule.cron })],
      ["Time zone", schedule.timezone],
      ["Created", when(schedule.createdAt)],
      ["Next run", nextRun(schedule)],
      ["Last run", when(schedule.lastRunAt)],
      ["Last task", schedule.lastQueueId ? idLink("tasks", schedule.lastQueueId) : when(0)],
    ]),
    metadataTags(schedule.metadata),
  );
}

function firedCard(schedule, tasks, page, update) {
  const none =
    schedule.state === "ACTIVE"
      ? h("p", { class: "muted state-empty-inline" }, "None yet: it fires ", when(schedule.nextRunAt), ".")
      : h("p", { class: "muted state-empty-inline", text: "None yet, and it is paused." });
  return h(
    "section",
    { class: "card fired", "aria-labelledby": "fired-title" },
    h("h2", { id: "fired-title", text: "Tasks it fired" }),
    tasks.length
      ? [
          h(
            "div",
            { class: "table-wrap" },
            h(
              "table",
              { class: "fired-tasks" },
              h(
                "thead",
                {},
                h(
                  "tr",
                  {},
                  ["Task", "State", "Status", "Fired"].map((text) => h("th", { scope: "col", text })),
                ),
              ),
              h(
                "tbody",
                {},
                tasks.map((task) =>
                  h(
                    "tr",
                    { "data-id": task.id },
                    h("td", { "data-label": "Task" }, idLink("tasks", task.id)),
                    h("td", { "data-label": "State" }, badge(task.state)),
                    h("td", { "data-label": "Status", class: "num", text: task.statusCode || "—" }),
                    h("td", { "data-label": "Fired" }, when(task.createdAt)),
                  ),
                ),
              ),
            ),
          ),
          h(
            "nav",
            { class: "pager", "aria-label": "Pages of fired tasks" },
            pagerButtons(page, tasks.length, update),
          ),
        ]
      : page.offset
        ? emptyState("No more tasks", "Go back a page.")
        : none,
  );
}
