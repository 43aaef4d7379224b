// The JSON API as the dashboard uses it. The owner's key travels only in the Authorization
// header (never in a URL, a cookie or local storage); refusals become ApiError carrying the
// server's own {action, message}.

/** Where the credentials of this tab live: sessionStorage, gone when the tab closes. */
const STORAGE_KEY = "tasks-server.credentials";

export class ApiError extends Error {
  constructor(status, message, action = "") {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.action = action;
  }
}

/**
 * The server's message as one readable line: validation problems list their field paths. A 404
 * carries no message (`{}`), so it is worded from what `path` names.
 */
function messageOf(status, body, path) {
  const message = body && typeof body === "object" ? body.message : undefined;
  if (Array.isArray(message)) {
    return message.map((p) => (p.path ? `${p.path}: ${p.message}` : p.message)).join("; ");
  }
  if (typeof message === "string" && message) return message;
  if (message && typeof message === "object") return JSON.stringify(message);
  if (status === 404) {
    const noun = path.startsWith("/v1/schedules")
      ? "schedule"
      : path.startsWith("/v1/destinations")
        ? "destination"
        : "task";
    return `Not found: no such ${noun} for this owner`;
  }
  return `The server answered ${status}`;
}

export function loadCredentials() {
  try {
    const saved = JSON.parse(sessionStorage.getItem(STORAGE_KEY) || "null");
    return saved && saved.ownerId && saved.key ? saved : null;
  } catch {
    return null;
  }
}

export function saveCredentials(credentials) {
  sessionStorage.setItem(STORAGE_KEY, JSON.stringify(credentials));
}

export function clearCredentials() {
  sessionStorage.removeItem(STORAGE_KEY);
}

export class Api {
  /** `base` is the server root, found from this module's own URL (works behind a prefix). */
  constructor(credentials, base = new URL("../", import.meta.url)) {
    this.credentials = credentials;
    this.base = base;
  }

  async request(method, path, { query, body } = {}) {
    const url = new URL(path.replace(/^\//, ""), this.base);
    for (const [name, value] of Object.entries(query || {})) {
      if (value !== undefined && value !== null && value !== "") {
        url.searchParams.set(name, String(value));
      }
    }
    const headers = {
      Accept: "application/json",
      Authorization: `Bearer ${this.credentials.key}`,
      "X-Tasks-Owner-Id": this.credentials.ownerId,
    };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(url, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        credentials: "omit",
        cache: "no-store",
      });
    } catch (error) {
      throw new ApiError(0, `The server could not be reached (${error.message})`);
    }
    const type = response.headers.get("content-type") || "";
    const parsed = type.includes("json") ? await response.json().catch(() => null) : null;
    if (!response.ok) {
      const error = new ApiError(
        response.status,
        messageOf(response.status, parsed, path),
        parsed?.action,
      );
      // A 400's problems by field path, for a form to show each beside its field.
      error.problems = Array.isArray(parsed?.message) ? parsed.message : [];
      throw error;
    }
    return parsed;
  }

  listTasks(query) {
    return this.request("GET", "/v1/queues", { query });
  }

  register(body) {
    return this.request("POST", "/v1/queues/register", { body });
  }

  /** One action over many tasks: `{action, ids}` or `{action, state}`. */
  bulk(body) {
    return this.request("POST", "/v1/queues/bulk", { body });
  }

  stats(window) {
    return this.request("GET", "/v1/stats", { query: { window } });
  }

  createSchedule(body) {
    return this.request("POST", "/v1/schedules", { body });
  }

  task(id) {
    return this.request("GET", `/v1/queues/${encodeURIComponent(id)}`);
  }

  batch(id) {
    return this.request("GET", `/v1/batches/${encodeURIComponent(id)}`);
  }

  config(id) {
    return this.request("GET", `/v1/queues/${encodeURIComponent(id)}/config`);
  }

  attempts(id) {
    return this.request("GET", `/v1/queues/${encodeURIComponent(id)}/attempts`, {
      query: { limit: 1000 },
    });
  }

  /** One of the single-task actions: pause, resume, revoke, execute, replay, delete. */
  act(id, action) {
    const path = `/v1/queues/${encodeURIComponent(id)}`;
    switch (action) {
      case "pause":
      case "resume":
      case "revoke":
        return this.request("PATCH", `${path}/${action}`);
      case "execute":
      case "replay":
        return this.request("POST", `${path}/${action}`);
      case "delete":
        return this.request("DELETE", path);
      default:
        throw new Error(`unknown action ${action}`);
    }
  }

  listSchedules(query) {
    return this.request("GET", "/v1/schedules", { query });
  }

  schedule(id) {
    return this.request("GET", `/v1/schedules/${encodeURIComponent(id)}`);
  }

  listDestinations(query) {
    return this.request("GET", "/v1/destinations", { query });
  }

  resetDestination(id) {
    return this.request("POST", `/v1/destinations/${encodeURIComponent(id)}/reset`);
  }

  scheduleConfig(id) {
    return this.request("GET", `/v1/schedules/${encodeURIComponent(id)}/config`);
  }

  /** One of a schedule's actions: pause, resume, delete. */
  actOnSchedule(id, action) {
    const path = `/v1/schedules/${encodeURIComponent(id)}`;
    switch (action) {
      case "pause":
      case "resume":
        return this.request("PATCH", `${path}/${action}`);
      case "delete":
        return this.request("DELETE", path);
      default:
        throw new Error(`unknown action ${action}`);
    }
  }
}
