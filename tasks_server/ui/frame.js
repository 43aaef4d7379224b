// The page around the screens: the hash route, the title, notices, the confirm dialog, the
// auto-refresh timer and running a detail's actions. The hash carries filters and ids, never
// a credential.

import {
  $,
  dataTable,
  emptyState,
  errorState,
  h,
  loadingState,
  pagerButtons,
  select,
  viewHead,
} from "./dom.js";

const PREFS_KEY = "tasks-server.prefs";
const REFRESH_MS = 5000;
export const PAGE_SIZES = [10, 25, 50, 100];

export const prefs = {
  load() {
    try {
      return { autoRefresh: true, ...JSON.parse(sessionStorage.getItem(PREFS_KEY) || "{}") };
    } catch {
      return { autoRefresh: true };
    }
  },
  save(values) {
    sessionStorage.setItem(PREFS_KEY, JSON.stringify(values));
  },
};

export function notify(message, kind = "error") {
  const notice = $("#notice");
  notice.className = `notice notice-${kind}`;
  notice.replaceChildren(
    h("span", { class: "notice-text", text: message }),
    h("button", {
      type: "button",
      class: "notice-close",
      "aria-label": "Dismiss",
      text: "×",
      onclick: clearNotice,
    }),
  );
  notice.hidden = false;
}

export function clearNotice() {
  $("#notice").hidden = true;
}

let flash = null; // a notice to show once the next view is up

/** Shows `message` after the coming navigation (a notice is cleared when the view changes). */
export function flashNext(message, kind = "success") {
  flash = [message, kind];
}

export function takeFlash() {
  const next = flash;
  flash = null;
  return next;
}

/** Asks before a destructive action, in a modal <dialog> (Escape cancels). */
export function confirmAction(question, label) {
  return new Promise((resolve) => {
    const dialog = $("#confirm");
    $("#confirm-text").textContent = question;
    $("#confirm-ok").textContent = label;
    dialog.returnValue = "";
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.showModal();
  });
}

export function parseHash() {
  const [path, search = ""] = location.hash.replace(/^#/, "").split("?");
  return { path: path || "/tasks", params: new URLSearchParams(search) };
}

export function go(path, params) {
  const search = params && [...params].length ? `?${params}` : "";
  location.hash = `#${path}${search}`;
}

/** Goes to `path` with `values` as its query, leaving out the empty ones. */
export function goWith(path, values) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(values)) if (value !== "") search.set(name, value);
  go(path, search);
}

/** `limit` and `offset` of a list's hash, each falling back to its default. */
export function pageParams(params) {
  const limit = Number(params.get("limit"));
  const offset = Number(params.get("offset"));
  return {
    limit: PAGE_SIZES.includes(limit) ? limit : PAGE_SIZES[0],
    offset: Number.isInteger(offset) && offset > 0 ? offset : 0,
  };
}

/** Marks the header's link of the current section. */
export function show(title, section, ...content) {
  document.title = `${title} · Tasks Server`;
  for (const link of document.querySelectorAll("#nav a")) {
    if (link.dataset.section === section) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  $("#view").replaceChildren(...content);
}

let timer = null;

/** Runs `load` every REFRESH_MS while auto-refresh is on and the tab is visible. */
export function autoRefresh(load) {
  clearInterval(timer);
  timer = setInterval(() => {
    if (prefs.load().autoRefresh && document.visibilityState === "visible") load();
  }, REFRESH_MS);
}

export function stopRefresh() {
  clearInterval(timer);
  timer = null;
}

/**
 * Keeps `region` filled by `fill()`: now, on every auto-refresh and whenever the `load` it
 * returns is called, one load at a time, `aria-busy` meanwhile. A failure shows in the region,
 * with a retry unless `final(error)` says retrying cannot help, and `failed()` clears what
 * else the load fills; lost credentials sign the session out instead.
 */
export function keepLoaded(session, region, fill, { final = () => false, failed = () => {} } = {}) {
  let loading = false;
  async function load() {
    if (loading) return;
    loading = true;
    region.setAttribute("aria-busy", "true");
    try {
      await fill();
    } catch (error) {
      if (signedOutBy(error)) return session.signedOut(error);
      region.replaceChildren(errorState(error, final(error) ? null : load));
      failed();
    } finally {
      loading = false;
      region.removeAttribute("aria-busy");
    }
  }
  load();
  autoRefresh(load);
  return load;
}

/**
 * A screen listing `noun` (its `path`) a page at a time: the heading with a refresh, `extra`
 * under it, the page size, the table of `columns` over `fetch(query)`'s rows and the pager.
 * `empty` is the title and hint of a first page with no rows. Returns its `load`.
 */
export function pagedList(session, params, { path, title, section, noun, extra = [], fetch, columns, empty }) {
  const query = pageParams(params);
  const update = (change) => goWith(path, { ...query, offset: 0, ...change });
  const body = h("div", { class: "list-body" }, loadingState(`Loading ${noun}…`));
  const pager = h("nav", { class: "pager", "aria-label": "Pages" });
  show(
    title,
    section,
    viewHead(h("h1", { text: title }), () => load()),
    ...extra,
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
  const load = keepLoaded(
    session,
    body,
    async () => {
      const rows = await fetch(query);
      body.replaceChildren(
        rows.length
          ? dataTable(noun, columns, rows)
          : query.offset
            ? emptyState(`No more ${noun}`, "Go back a page.")
            : emptyState(...empty),
      );
      pager.replaceChildren(...pagerButtons(query, rows.length, update));
    },
    { failed: () => pager.replaceChildren() },
  );
  return load;
}

/**
 * Runs one action of a detail screen: asks first when it has a `confirm` question, then shows
 * its `done` notice and reloads, or calls `deleted` after a delete. A refusal shows the server's
 * message; when the thing changed or vanished meanwhile (422, 404) it is shown as it is now.
 */
export async function perform(action, button, { run, load, deleted }) {
  if (action.confirm && !(await confirmAction(action.confirm, action.label))) return;
  button.disabled = true;
  try {
    await run(action.name);
    if (action.name === "delete") {
      deleted();
      return;
    }
    notify(action.done, "success");
    await load();
  } catch (error) {
    notify(`${action.label} refused: ${error.message}`);
    if (error.status === 422 || error.status === 404) await load();
    else button.disabled = false;
  }
}

/** Whether an API error means the credentials stopped working. */
export function signedOutBy(error) {
  return error.status === 401 || error.status === 403;
}
