// Building blocks of every screen: elements, times, badges, the loading / empty / error boxes,
// selects, pagers and action bars. Elements are built node by node, never parsed from strings.

/** An element: `attrs` holds attributes, `class`, `text` and `on<event>` handlers. */
export function h(tag, attrs = {}, ...children) {
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

export const $ = (selector) => document.querySelector(selector);

export function badge(value, kind = "state") {
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

/**
 * An epoch-ms instant as its exact time with "3 minutes ago" beside it: visible without
 * hovering (a phone has no hover); 0 is "—". Another year's date says its year.
 */
export function when(ms) {
  if (!ms) return h("span", { class: "muted", text: "—" });
  const date = new Date(ms);
  const exact = date.getFullYear() === new Date().getFullYear() ? thisYear : absolute;
  return h(
    "time",
    { datetime: date.toISOString(), title: absolute.format(date) },
    h("span", { class: "exact", text: exact.format(date) }),
    " ",
    h("span", { class: "ago", text: ago(ms) }),
  );
}

const thisYear = new Intl.DateTimeFormat(undefined, {
  month: "short",
  day: "numeric",
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
  hourCycle: "h23",
});

export function duration(ms) {
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;
  return `${Math.round(ms / 60000)} min`;
}

/** A base64 body as text when it is UTF-8 (JSON pretty-printed), else a note of its size. */
export function decoded(base64) {
  const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  let text;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    return `(${bytes.length} bytes of binary data)`;
  }
  if (!text) return "(empty body)";
  try {
    const value = JSON.parse(text);
    if (value !== null && typeof value === "object") return JSON.stringify(value, null, 2);
  } catch {
    // not JSON: shown as it came
  }
  return text;
}

/** A task's or schedule's labels as tags ("key=value"), or nothing. */
export function labelTags(labels) {
  const pairs = Object.entries(labels || {});
  return pairs.length
    ? h(
        "span",
        { class: "labels" },
        pairs.map(([k, v]) => h("span", { class: "tag label", text: `${k}=${v}` })),
      )
    : null;
}

// An attempt's outcomes, in the order charts stack them; each has its colour in style.css
// (.fill-<outcome>, .outcome-<outcome>).
export const OUTCOMES = [
  "SUCCESS",
  "FAILURE",
  "TIMEOUT",
  "TOO_LARGE",
  "TRANSPORT",
  "UNFILLED",
  "ABORTED",
  "INTERRUPTED",
  "EXPIRED",
];

const SVG = "http://www.w3.org/2000/svg";

/** An SVG element, attributes set as given (no inline style: the page's CSP forbids it). */
export function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "text") el.textContent = value;
    else el.setAttribute(name, String(value));
  }
  el.append(...children.flat(Infinity).filter(Boolean));
  return el;
}

/** A task or schedule id linking to its detail. */
export function idLink(kind, id) {
  return h("a", { class: "mono", href: `#/${kind}/${id}`, text: id });
}

export function errorState(error, retry) {
  return h(
    "div",
    { class: "state-box box-error", role: "alert" },
    h("p", { class: "state-title", text: "The server refused" }),
    h("p", { class: "state-message", text: error.message }),
    error.action && h("p", { class: "muted", text: error.action }),
    retry && h("button", { type: "button", class: "button", text: "Try again", onclick: retry }),
  );
}

export function loadingState(text) {
  return h(
    "div",
    { class: "state-box box-loading", "aria-busy": "true" },
    h("span", { class: "spinner", "aria-hidden": "true" }),
    h("span", { text }),
  );
}

export function emptyState(title, hint) {
  return h(
    "div",
    { class: "state-box box-empty" },
    h("p", { class: "state-title", text: title }),
    h("p", { class: "muted", text: hint }),
  );
}

export function select(id, label, value, options, onchange) {
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

/**
 * Previous / Next around "11–20", for a page of `count` rows at `query.offset`; none for an
 * empty first page.
 */
export function pagerButtons(query, count, update) {
  if (!count && !query.offset) return [];
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

/** A detail's action buttons: those `state` does not allow are disabled. */
export function actionBar(actions, state, act) {
  return h(
    "div",
    { class: "actions", role: "toolbar", "aria-label": "Actions" },
    actions.map((action) => {
      const button = h("button", {
        type: "button",
        class: `button${action.danger ? " danger" : ""}`,
        "data-action": action.name,
        text: action.label,
        disabled: !action.states.includes(state),
      });
      button.addEventListener("click", () => act(action, button));
      return button;
    }),
  );
}

/** A card's definition list of [term, value] pairs. */
export function facts(pairs) {
  return h(
    "dl",
    { class: "facts" },
    pairs.map(([term, value]) => [h("dt", { text: term }), h("dd", {}, value)]),
  );
}

export function metadataTags(metadata) {
  return (
    metadata &&
    h(
      "div",
      { class: "metadata" },
      Object.entries(metadata).map(([k, v]) => h("span", { class: "tag", text: `${k}: ${v}` })),
    )
  );
}

/** The card with a stored request as `/config` returns it, secrets already "***". */
export function configCard(config, hint) {
  return h(
    "section",
    { class: "card", "aria-labelledby": "config-title" },
    h("h2", { id: "config-title", text: "Stored request" }),
    h("p", { class: "muted", text: hint }),
    h(
      "pre",
      { class: "config", tabindex: 0 },
      JSON.stringify({ httpRequest: config.httpRequest, config: config.config }, null, 2),
    ),
  );
}

export function requestLine(request) {
  return h(
    "p",
    { class: "request-line" },
    h("span", { class: "method", text: request.method || "?" }),
    h("code", { class: "url", text: request.url || "" }),
  );
}

/** A screen's head: its heading and a Refresh button. */
export function viewHead(heading, refresh) {
  return h(
    "div",
    { class: "view-head" },
    heading,
    h("button", { type: "button", class: "button", text: "Refresh", onclick: () => refresh() }),
  );
}

/**
 * A table of `rows`, one column per `[label, cell, attrs]`: `cell(row)` gives the content and
 * `attrs` (optional) the cell's own attributes; each cell carries its label for the narrow
 * layout, where a row shows as a card.
 */
export function dataTable(className, columns, rows) {
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: className },
      h("thead", {}, h("tr", {}, columns.map(([text]) => h("th", { scope: "col", text })))),
      h(
        "tbody",
        {},
        rows.map((row) =>
          h(
            "tr",
            { "data-id": row.id },
            columns.map(([label, cell, attrs = {}]) =>
              h("td", { "data-label": label, ...attrs }, cell(row)),
            ),
          ),
        ),
      ),
    ),
  );
}
