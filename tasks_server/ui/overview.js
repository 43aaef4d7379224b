// The overview: how the owner's tasks are doing, at a glance, from GET /v1/stats. Small charts
// drawn as SVG here (no chart library, no CDN): attempts per minute by outcome, lateness,
// the most failing destinations and the tasks by state.

import {
  OUTCOMES,
  badge,
  emptyState,
  facts,
  h,
  loadingState,
  select,
  svg,
  viewHead,
  when,
} from "./dom.js";
import { goWith, keepLoaded, show } from "./frame.js";

const WINDOWS = ["15m", "1h", "6h", "24h"];
const MINUTE_MS = 60_000;
const WIDTH = 600;
const HEIGHT = 140;

export function overview(session, params) {
  const chosen = params.get("window");
  const window = WINDOWS.includes(chosen) ? chosen : "1h";
  const body = h("div", { class: "overview" }, loadingState("Loading the overview…"));
  show(
    "Overview",
    "overview",
    viewHead(h("h1", { text: "Overview" }), () => load()),
    h(
      "div",
      { class: "toolbar", role: "group", "aria-label": "Time window" },
      select(
        "overview-window",
        "Window",
        window,
        WINDOWS.map((w) => [w, `Last ${w}`]),
        (event) => goWith("/overview", { window: event.target.value }),
      ),
    ),
    body,
  );
  const load = keepLoaded(session, body, async () => {
    body.replaceChildren(...parts(await session.api.stats(window)));
  });
}

function card(id, title, ...content) {
  return h(
    "section",
    { class: "card chart-card", id, "aria-labelledby": `${id}-title` },
    h("h2", { id: `${id}-title`, text: title }),
    ...content,
  );
}

function parts(stats) {
  return [
    card("chart-attempts", "Attempts per minute", attemptsChart(stats)),
    h(
      "div",
      { class: "overview-grid" },
      card("chart-lateness", "Lateness", latenessChart(stats.lateness)),
      card("chart-states", "Tasks by state", statesChart(stats.states)),
    ),
    card("chart-failing", "Most failing destinations", failingChart(stats.topFailingDestinations)),
  ];
}

function attemptsChart(stats) {
  const totals = {};
  for (const minute of stats.attemptsPerMinute) {
    for (const [outcome, n] of Object.entries(minute.outcomes)) {
      totals[outcome] = (totals[outcome] || 0) + n;
    }
  }
  if (!stats.attemptsPerMinute.length) {
    return emptyState(`No attempt ended in the last ${stats.window}`, "Tasks that run show here.");
  }
  const first = Math.floor(stats.from / MINUTE_MS) * MINUTE_MS;
  const count = Math.max(1, Math.ceil((stats.to - first) / MINUTE_MS));
  const byMinute = new Map(stats.attemptsPerMinute.map((m) => [m.minute, m.outcomes]));
  const peak = Math.max(...stats.attemptsPerMinute.map((m) => sum(Object.values(m.outcomes))));
  const step = WIDTH / count;
  const bars = [];
  for (let i = 0; i < count; i++) {
    const outcomes = byMinute.get(first + i * MINUTE_MS);
    if (!outcomes) continue;
    let y = HEIGHT;
    for (const outcome of OUTCOMES) {
      const n = outcomes[outcome] || 0;
      if (!n) continue;
      const height = (n / peak) * (HEIGHT - 4);
      y -= height;
      bars.push(
        svg(
          "rect",
          {
            class: `fill-${outcome.toLowerCase()}`,
            x: (i * step).toFixed(2),
            y: y.toFixed(2),
            width: Math.max(step - 1, 1).toFixed(2),
            height: height.toFixed(2),
          },
          svg("title", { text: `${new Date(first + i * MINUTE_MS).toLocaleTimeString()}: ${n} ${outcome}` }),
        ),
      );
    }
  }
  const summary = Object.entries(totals)
    .map(([o, n]) => `${n} ${o}`)
    .join(", ");
  return [
    svg(
      "svg",
      {
        class: "chart",
        viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
        role: "img",
        "aria-label": `Attempts per minute: ${summary}; at most ${peak} in a minute`,
      },
      svg("line", { class: "axis", x1: 0, y1: HEIGHT, x2: WIDTH, y2: HEIGHT }),
      bars,
    ),
    h(
      "p",
      { class: "chart-axis muted" },
      when(first),
      h("span", { text: `peak ${peak} a minute` }),
      when(stats.to),
    ),
    h(
      "ul",
      { class: "legend" },
      OUTCOMES.filter((o) => totals[o]).map((o) =>
        h(
          "li",
          {},
          h("span", { class: `swatch fill-${o.toLowerCase()}`, "aria-hidden": "true" }),
          `${o} `,
          h("strong", { text: String(totals[o]) }),
        ),
      ),
    ),
  ];
}

function latenessChart(lateness) {
  if (!lateness.attempts) return emptyState("No attempt yet", "Lateness shows once tasks run.");
  const top = Math.max(lateness.p99Ms, 1);
  const bar = (label, ms, row) =>
    svg(
      "g",
      {},
      svg("text", { class: "chart-label", x: 0, y: row * 28 + 16, text: label }),
      svg("rect", {
        class: "fill-lateness",
        x: 48,
        y: row * 28 + 4,
        width: Math.max((ms / top) * (WIDTH - 200), 2).toFixed(2),
        height: 16,
      }),
      svg("text", { class: "chart-value", x: WIDTH - 140, y: row * 28 + 16, text: `≤ ${ms} ms` }),
    );
  return [
    svg(
      "svg",
      {
        class: "chart chart-small",
        viewBox: `0 0 ${WIDTH} 60`,
        role: "img",
        "aria-label": `Lateness p50 at most ${lateness.p50Ms} ms, p99 at most ${lateness.p99Ms} ms`,
      },
      bar("p50", lateness.p50Ms, 0),
      bar("p99", lateness.p99Ms, 1),
    ),
    // Also as text: the chart's labels shrink with it on a phone.
    facts([
      ["Attempts", String(lateness.attempts)],
      ["p50", `≤ ${lateness.p50Ms} ms`],
      ["p99", `≤ ${lateness.p99Ms} ms`],
    ]),
  ];
}

function statesChart(states) {
  const entries = Object.entries(states).sort(([, a], [, b]) => b - a);
  if (!entries.length) return emptyState("No tasks", "Register one and it shows here.");
  const top = Math.max(...entries.map(([, n]) => n));
  return h(
    "ul",
    { class: "state-bars" },
    entries.map(([state, n]) =>
      h(
        "li",
        {},
        h("a", { href: `#/tasks?state=${state}` }, badge(state)),
        svg(
          "svg",
          { class: "meter", viewBox: "0 0 100 10", preserveAspectRatio: "none", "aria-hidden": "true" },
          svg("rect", { class: `fill-${state.toLowerCase()}`, x: 0, y: 0, width: (n / top) * 100, height: 10 }),
        ),
        h("strong", { class: "num", text: String(n) }),
      ),
    ),
  );
}

function failingChart(destinations) {
  if (!destinations.length) {
    return h("p", { class: "muted state-empty-inline", text: "No destination failed in this window." });
  }
  const top = Math.max(...destinations.map((d) => d.failures));
  return h(
    "ul",
    { class: "state-bars failing" },
    destinations.map((d) =>
      h(
        "li",
        {},
        h("code", { class: "url", text: d.destination }),
        svg(
          "svg",
          { class: "meter", viewBox: "0 0 100 10", preserveAspectRatio: "none", "aria-hidden": "true" },
          svg("rect", { class: "fill-failure", x: 0, y: 0, width: (d.failures / top) * 100, height: 10 }),
        ),
        h("strong", { class: "num", text: String(d.failures) }),
      ),
    ),
  );
}

function sum(values) {
  return values.reduce((a, b) => a + b, 0);
}
