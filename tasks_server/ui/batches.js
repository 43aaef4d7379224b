// A batch (SPEC §17.4): its tasks drawn as a graph, dependencies left to right, each task a
// node coloured by its state that opens the task. The layout is layered: a task's column is
// the length of the longest chain of dependencies leading to it, so every edge points right.

import { badge, h, idLink, loadingState, svg, viewHead } from "./dom.js";
import { keepLoaded, show } from "./frame.js";

const NODE_W = 168;
const NODE_H = 44;
const GAP_X = 56;
const GAP_Y = 16;

export function batchDetail(session, id) {
  const content = h("div", { class: "detail" }, loadingState("Loading the batch…"));
  show(
    `Batch ${id}`,
    "tasks",
    h("a", { class: "back", href: "#/tasks", text: "← All tasks" }),
    viewHead(h("h1", {}, "Batch ", h("code", { class: "mono", text: id })), () => load()),
    content,
  );
  const load = keepLoaded(
    session,
    content,
    async () => {
      const batch = await session.api.batch(id);
      content.replaceChildren(graphCard(batch), tasksCard(batch));
    },
    { final: (error) => error.status === 404 },
  );
}

/** Each task's column: the longest chain of dependencies before it (tasks come in order, each
 * after those it depends on, as the batch was registered). */
export function layers(tasks, edges) {
  const parents = new Map(tasks.map((task) => [task.id, []]));
  for (const edge of edges) parents.get(edge.to)?.push(edge.from);
  const column = new Map();
  const depth = (id, seen = new Set()) => {
    if (column.has(id)) return column.get(id);
    if (seen.has(id)) return 0; // a cycle cannot be registered; never loop on one
    seen.add(id);
    const before = (parents.get(id) || []).filter((p) => parents.has(p));
    const value = before.length ? 1 + Math.max(...before.map((p) => depth(p, seen))) : 0;
    column.set(id, value);
    return value;
  };
  for (const task of tasks) depth(task.id);
  return column;
}

function graphCard(batch) {
  const column = layers(batch.tasks, batch.edges);
  const rows = new Map();
  const place = new Map();
  for (const task of batch.tasks) {
    const x = column.get(task.id);
    const y = rows.get(x) || 0;
    rows.set(x, y + 1);
    place.set(task.id, { x: x * (NODE_W + GAP_X), y: y * (NODE_H + GAP_Y) });
  }
  const width = (Math.max(0, ...column.values()) + 1) * (NODE_W + GAP_X) - GAP_X;
  const height = Math.max(1, ...rows.values()) * (NODE_H + GAP_Y) - GAP_Y;
  const lines = batch.edges
    .filter((edge) => place.has(edge.from) && place.has(edge.to))
    .map((edge) => {
      const from = place.get(edge.from);
      const to = place.get(edge.to);
      const [x1, y1] = [from.x + NODE_W, from.y + NODE_H / 2];
      const [x2, y2] = [to.x, to.y + NODE_H / 2];
      const bend = (x2 - x1) / 2;
      return svg("path", {
        class: edge.requireSuccess ? "edge" : "edge edge-any",
        d: `M${x1},${y1} C${x1 + bend},${y1} ${x2 - bend},${y2} ${x2},${y2}`,
        "marker-end": "url(#arrow)",
      });
    });
  const nodes = batch.tasks.map((task) => {
    const { x, y } = place.get(task.id);
    const label = task.ref || task.id.slice(-8);
    return svg(
      "a",
      { href: `#/tasks/${task.id}`, class: `node state-${task.state.toLowerCase()}` },
      svg("title", { text: `${label}: ${task.state} (${task.id})` }),
      svg("rect", { x, y, width: NODE_W, height: NODE_H, rx: 6 }),
      svg("text", { x: x + 10, y: y + 18, class: "node-label", text: label }),
      svg("text", { x: x + 10, y: y + 34, class: "node-state", text: task.state }),
    );
  });
  const arrow = svg(
    "marker",
    { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 8, markerHeight: 8, orient: "auto" },
    svg("path", { d: "M0,0 L10,5 L0,10 z", class: "arrow" }),
  );
  const drawing = svg(
    "svg",
    {
      class: "graph",
      viewBox: `-2 -2 ${width + 4} ${height + 4}`,
      width: width + 4,
      height: height + 4,
      role: "img",
      "aria-label": `The batch's ${batch.tasks.length} tasks and their dependencies`,
    },
    svg("defs", {}, arrow),
    ...lines,
    ...nodes,
  );
  return h(
    "section",
    { class: "card", "aria-labelledby": "graph-title" },
    h("h2", { id: "graph-title", text: "Dependencies" }),
    h(
      "p",
      { class: "muted" },
      "Each task waits for those to its left; a dashed line does not require success.",
    ),
    h("div", { class: "graph-scroll" }, drawing),
  );
}

function tasksCard(batch) {
  const items = batch.tasks.map((task) =>
    h("li", {}, badge(task.state), " ", task.ref ? `${task.ref} ` : "", idLink("tasks", task.id)),
  );
  return h(
    "section",
    { class: "card", "aria-labelledby": "batch-tasks-title" },
    h("h2", { id: "batch-tasks-title", text: `Tasks (${batch.tasks.length})` }),
    h("ul", { class: "plain-list" }, items),
  );
}
