// The schedule screens (SPEC §11.1): the list, and a schedule's detail with its redacted
// request, the tasks it fired and the pause / resume / delete actions (creating one is in
// forms.js).

import {
  actionBar,
  badge,
  configCard,
  dataTable,
  emptyState,
  facts,
  h,
  idLink,
  labelTags,
  loadingState,
  metadataTags,
  pagerButtons,
  requestLine,
  viewHead,
  when,
} from "./dom.js";
import {
  flashNext,
  go,
  goWith,
  keepLoaded,
  pageParams,
  pagedList,
  perform,
  show,
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
  pagedList(session, params, {
    path: "/schedules",
    title: "Schedules",
    section: "schedules",
    noun: "schedules",
    extra: [
      h("p", {}, h("a", { class: "button primary", href: "#/schedules/new", text: "New schedule" })),
    ],
    fetch: (query) => session.api.listSchedules(query),
    columns: SCHEDULE_COLUMNS,
    empty: [
      "No schedules yet",
      "Create one with New schedule (or POST /v1/schedules) and it shows up here.",
    ],
  });
}

const SCHEDULE_COLUMNS = [
  ["Schedule", (row) => idLink("schedules", row.id)],
  [
    "Request",
    (row) =>
      h(
        "span",
        { class: "request-cell" },
        h("span", { class: "method", text: row.method || "?" }),
        h("code", { class: "url", text: row.target || "" }),
      ),
  ],
  ["Labels", (row) => labelTags(row.labels) || h("span", { class: "muted", text: "—" })],
  ["State", (row) => badge(row.state)],
  ["Cron", (row) => h("span", { class: "cron-cell" }, cronOf(row))],
  ["Next run", nextRun],
  ["Last run", (row) => when(row.lastRunAt)],
  ["Last task", (row) => (row.lastQueueId ? idLink("tasks", row.lastQueueId) : when(0))],
];

// --- a schedule's detail -------------------------------------------------------------------

export function scheduleDetail(session, id, params) {
  const page = pageParams(params);
  const content = h("div", { class: "detail" }, loadingState("Loading the schedule…"));
  show(
    `Schedule ${id}`,
    "schedules",
    h("a", { class: "back", href: "#/schedules", text: "← All schedules" }),
    viewHead(h("h1", {}, "Schedule ", h("code", { class: "mono", text: id })), () => load()),
    content,
  );
  const load = keepLoaded(
    session,
    content,
    async () => {
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
    },
    { final: (error) => error.status === 404 },
  );

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

const FIRED_COLUMNS = [
  ["Task", (task) => idLink("tasks", task.id)],
  ["State", (task) => badge(task.state)],
  ["Status", (task) => String(task.statusCode || "—"), { class: "num" }],
  ["Fired", (task) => when(task.createdAt)],
];

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
          dataTable("fired-tasks", FIRED_COLUMNS, tasks),
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
