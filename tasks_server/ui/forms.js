// Creating a task or a schedule from a form. The server validates: its 400 lists problems by
// field path, and each is shown beside the field that holds that path (the rest above the
// buttons), so the page never guesses the API's rules.

import { h } from "./dom.js";
import { flashNext, go, show } from "./frame.js";

const METHODS = ["POST", "GET", "PUT", "PATCH", "DELETE"];

/** A labelled input whose errors are those of the API fields starting with `path`. */
function field(id, label, path, input, hint) {
  const error = h("p", { class: "field-error", id: `${id}-error`, role: "alert", hidden: true });
  input.id = id;
  input.setAttribute("aria-describedby", `${id}-error`);
  return h(
    "div",
    { class: "form-field", "data-path": path },
    h("label", { for: id, text: label }),
    input,
    hint && h("p", { class: "muted hint", text: hint }),
    error,
  );
}

function requestFields() {
  return [
    field("form-url", "URL", "httpRequest.url", h("input", { type: "url", required: true, placeholder: "the http or https URL to call" })),
    field(
      "form-method",
      "Method",
      "httpRequest.method",
      h("select", {}, METHODS.map((m) => h("option", { value: m, text: m }))),
    ),
    field(
      "form-data",
      "Body",
      "httpRequest.data",
      h("textarea", { rows: 4, spellcheck: "false", placeholder: '{"hello": "world"} or text' }),
      "A JSON object is sent as JSON; anything else as text.",
    ),
    field(
      "form-retry",
      "Retries",
      "config.retry",
      h("input", { type: "number", min: 0, value: 0, inputmode: "numeric" }),
    ),
    field(
      "form-labels",
      "Labels",
      "labels",
      h("textarea", { rows: 2, spellcheck: "false", placeholder: "env=prod\nteam=billing" }),
      "One key=value a line. Stored in plain text, not encrypted: no secrets.",
    ),
  ];
}

function value(form, id) {
  return form.querySelector(`#${id}`).value.trim();
}

/** The request part of a registration, from the form's fields. */
function requestDocument(form) {
  const data = value(form, "form-data");
  let parsed = data;
  try {
    const json = JSON.parse(data);
    if (json && typeof json === "object" && !Array.isArray(json)) parsed = json;
  } catch {
    // text, sent as it is
  }
  const labels = {};
  for (const line of value(form, "form-labels").split("\n")) {
    if (!line.trim()) continue;
    const at = line.indexOf("=");
    labels[at < 0 ? line.trim() : line.slice(0, at).trim()] = at < 0 ? "" : line.slice(at + 1).trim();
  }
  const retry = Number(value(form, "form-retry") || 0);
  return {
    httpRequest: {
      url: value(form, "form-url"),
      method: value(form, "form-method"),
      ...(data ? { data: parsed } : {}),
    },
    config: retry ? { retry } : {},
    ...(Object.keys(labels).length ? { labels } : {}),
  };
}

/** Puts each of the API's problems beside its field; those of no field go to `general`. */
function showProblems(form, general, error) {
  for (const el of form.querySelectorAll(".field-error")) {
    el.hidden = true;
    el.textContent = "";
  }
  for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
  const rest = [];
  const problems = error.problems && error.problems.length ? error.problems : [{ message: error.message }];
  const fields = [...form.querySelectorAll(".form-field")];
  for (const problem of problems) {
    const path = problem.path || "";
    const owner = fields
      .filter((f) => path === f.dataset.path || path.startsWith(`${f.dataset.path}.`))
      .sort((a, b) => b.dataset.path.length - a.dataset.path.length)[0];
    if (!owner) {
      rest.push(path ? `${path}: ${problem.message}` : problem.message);
      continue;
    }
    const out = owner.querySelector(".field-error");
    out.textContent = out.textContent ? `${out.textContent}; ${problem.message}` : problem.message;
    out.hidden = false;
    owner.querySelector("input, select, textarea").setAttribute("aria-invalid", "true");
  }
  general.hidden = !rest.length;
  general.textContent = rest.join("; ");
}

function formScreen({ title, section, back, fields, build, submit, created }) {
  const general = h("p", { class: "form-error", role: "alert", hidden: true });
  const button = h("button", { type: "submit", class: "button primary", text: title });
  const form = h(
    "form",
    { class: "card create-form", novalidate: true },
    fields,
    general,
    h("div", { class: "form-buttons" }, button, h("a", { class: "button", href: `#${back}`, text: "Cancel" })),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    button.disabled = true;
    try {
      const made = await submit(build(form));
      flashNext(created(made));
      go(`${back}/${made.id}`);
    } catch (error) {
      showProblems(form, general, error);
      button.disabled = false;
    }
  });
  show(
    title,
    section,
    h("a", { class: "back", href: `#${back}`, text: "← Back" }),
    h("div", { class: "view-head" }, h("h1", { text: title })),
    form,
  );
  form.querySelector("input").focus();
}

export function newTask(session) {
  formScreen({
    title: "New task",
    section: "tasks",
    back: "/tasks",
    fields: [
      ...requestFields(),
      field(
        "form-delay",
        "Run after (seconds)",
        "config.executionDelay",
        h("input", { type: "number", min: 0, value: 0, inputmode: "numeric" }),
      ),
    ],
    build: (form) => {
      const document = requestDocument(form);
      const delay = Number(value(form, "form-delay") || 0);
      if (delay) document.config.executionDelay = Math.round(delay * 1000);
      return document;
    },
    submit: (body) => session.api.register(body),
    created: (task) => `Task ${task.id} registered.`,
  });
}

export function newSchedule(session) {
  formScreen({
    title: "New schedule",
    section: "schedules",
    back: "/schedules",
    fields: [
      field("form-cron", "Cron", "cron", h("input", { required: true, placeholder: "*/5 * * * *", spellcheck: "false" }), "5 fields, 6 with seconds first, or @hourly, @daily…"),
      field("form-timezone", "Time zone", "timezone", h("input", { value: "UTC", spellcheck: "false" })),
      ...requestFields(),
    ],
    build: (form) => ({
      cron: value(form, "form-cron"),
      timezone: value(form, "form-timezone") || "UTC",
      ...requestDocument(form),
    }),
    submit: (body) => session.api.createSchedule(body),
    created: (schedule) => `Schedule ${schedule.id} created.`,
  });
}
