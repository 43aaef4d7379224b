// The destinations screen (SPEC §18.1): each destination an attempt failed to, with its
// circuit's state, failures in a row, when it lets a probe through and the last error; an
// open or half-open circuit can be reset (closed) from here.

import {
  badge,
  dataTable,
  emptyState,
  h,
  loadingState,
  pagerButtons,
  select,
  viewHead,
  when,
} from "./dom.js";
import { PAGE_SIZES, goWith, keepLoaded, notify, pageParams, show } from "./frame.js";

export function destinationList(session, params) {
  const query = pageParams(params);
  const update = (change) => goWith("/destinations", { ...query, offset: 0, ...change });
  const body = h("div", { class: "list-body" }, loadingState("Loading destinations…"));
  const pager = h("nav", { class: "pager", "aria-label": "Pages" });
  show(
    "Destinations",
    "destinations",
    viewHead(h("h1", { text: "Destinations" }), () => load()),
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

  async function reset(row, button) {
    button.disabled = true;
    try {
      await session.api.resetDestination(row.id);
      notify(`Reset: ${address(row)} is closed, its waiting tasks go now.`, "success");
    } catch (error) {
      notify(`Reset refused: ${error.message}`);
    }
    await load();
  }

  const columns = [
    ["Destination", (row) => h("code", { class: "mono", text: address(row) })],
    ["Circuit", (row) => badge(row.state)],
    ["Failures in a row", (row) => String(row.consecutiveFailures)],
    ["Open until", (row) => when(row.openUntil)],
    ["Last error", (row) => row.lastError ?? "—"],
    [
      "",
      (row) =>
        row.state === "closed"
          ? ""
          : h("button", {
              type: "button",
              class: "button",
              text: "Reset",
              "aria-label": `Reset ${address(row)}`,
              onclick: (event) => reset(row, event.currentTarget),
            }),
    ],
  ];

  const load = keepLoaded(
    session,
    body,
    async () => {
      const rows = await session.api.listDestinations(query);
      body.replaceChildren(
        rows.length
          ? dataTable("destinations", columns, rows)
          : emptyState(
              query.offset ? "No more destinations" : "No failing destinations",
              query.offset
                ? "Go back a page."
                : "One shows up here once an attempt to it fails; failing again and again, " +
                  "its circuit opens and its tasks wait.",
            ),
      );
      pager.replaceChildren(...pagerButtons(query, rows.length, update));
    },
    { failed: () => pager.replaceChildren() },
  );
}

function address(row) {
  return `${row.scheme}://${row.host}:${row.port}`;
}
