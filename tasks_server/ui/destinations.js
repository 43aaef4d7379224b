// The destinations screen (SPEC §18.1): each destination an attempt failed to, with its
// circuit's state, failures in a row, when it lets a probe through and the last error; an
// open or half-open circuit can be reset (closed) from here.

import { badge, h, when } from "./dom.js";
import { notify, pagedList } from "./frame.js";

export function destinationList(session, params) {
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

  const load = pagedList(session, params, {
    path: "/destinations",
    title: "Destinations",
    section: "destinations",
    noun: "destinations",
    fetch: (query) => session.api.listDestinations(query),
    columns,
    empty: [
      "No failing destinations",
      "One shows up here once an attempt to it fails; failing again and again, " +
        "its circuit opens and its tasks wait.",
    ],
  });
}

function address(row) {
  return `${row.scheme}://${row.host}:${row.port}`;
}
