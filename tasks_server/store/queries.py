"""Each engine's statements, by name: those both run as written in ``store/sql/common.sql``,
the rest in its own file (``store/sql/<engine>.sql``).

A file is a list of ``-- name: <name>`` blocks, in the manner of procrastinate's
queries.sql; comments above a block say why it reads as it does. Both engines hold the same
names (a test says so) and bind the same arguments in the same order as ``$1``, ``$2``…
(SQLite's ``?1``, ``?2``… once loaded). ``@COLUMNS@``-style words stand for the column lists
below, which both engines share; ``{set}``-style fill-ins are filled per call from names
checked here (`text`), never from a client's input.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

_BLOCK = re.compile(r"^-- name: (\w+)\n", re.MULTILINE)
_PARAM = re.compile(r"\$(\d+)")

# A task is in flight exactly when it has an open attempt row (SPEC §9.1).
IN_FLIGHT = "EXISTS (SELECT 1 FROM attempts a WHERE a.queue_id = queues.id AND a.finished_at = 0)"
FRAGMENTS = {
    "COLUMNS": (
        "queues.id, queues.owner_id, queues.state, queues.created_at, queues.status_code, "
        "queues.estimate_execution_at, queues.estimate_end_at, queues.paused_at, "
        "queues.retry_count, queues.retry_limit, queues.version, queues.request, "
        "queues.metadata, queues.response, queues.attempts, queues.schedule_id, "
        f"{IN_FLIGHT}, queues.callback_of, queues.callback_id, queues.batch_id, "
        "queues.pending_deps, queues.has_dependents, queues.ref, queues.labels, "
        "queues.method, queues.target"
    ),
    # What the scheduler needs of a due task: never the response blob.
    "DUE_COLUMNS": (
        "queues.id, queues.owner_id, queues.estimate_execution_at, queues.retry_count, "
        "queues.retry_limit, queues.version, queues.request, queues.has_dependents"
    ),
    "SUMMARY_COLUMNS": (
        "id, state, created_at, status_code, estimate_execution_at, estimate_end_at, "
        "schedule_id, batch_id, ref, method, target, labels"
    ),
    # A finished task that retention may delete: not while its batch has an unfinished task,
    # nor while a task depending on it is unfinished (it may read its response) (SPEC §17).
    "NOT_NEEDED": (
        "NOT (has_dependents = 1 AND EXISTS (SELECT 1 FROM dependencies d "
        "JOIN queues c ON c.id = d.queue_id WHERE d.depends_on = queues.id "
        "AND c.state IN ('RUNNING', 'PAUSED', 'WAITING'))) "
        "AND NOT (batch_id IS NOT NULL AND EXISTS (SELECT 1 FROM queues b "
        "WHERE b.batch_id = queues.batch_id AND b.state IN ('RUNNING', 'PAUSED', 'WAITING')))"
    ),
    # An opened attempt's number (task `q`): after the highest of its rows and of the last
    # one an outcome recorded (`queues.attempts`: rows are pruned, an import brings a count).
    "NEXT_ATTEMPT": (
        "1 + (SELECT CASE WHEN coalesce(max(a.attempt), 0) > q.attempts THEN max(a.attempt) "
        "ELSE q.attempts END FROM attempts a WHERE a.queue_id = q.id)"
    ),
    # What closing attempts returns for the overview's counts (`stats.count`).
    "CLOSED": (
        "attempts.queue_id, attempts.outcome, attempts.finished_at, "
        "attempts.started_at - attempts.due_at"
    ),
    "SCHEDULE_COLUMNS": (
        "id, owner_id, state, cron, timezone, created_at, next_run_at, last_run_at, "
        "last_queue_id, version, request, metadata, labels"
    ),
}
ORDER_COLUMNS = {
    "createdAt": "created_at",
    "estimateEndAt": "estimate_end_at",
    "estimateExecutionAt": "estimate_execution_at",
}
# A list filter's condition, over the parameters its value takes (a label: key and value).
FILTERS = {
    "state": "state = ${0}",
    "schedule_id": "schedule_id = ${0}",
    "batch_id": "batch_id = ${0}",
    "status_code": "status_code = ${0}",
    "outcome": "outcome = ${0}",
    "created_from": "created_at >= ${0}",
    "created_to": "created_at <= ${0}",
    # A label is probed per row (`list_tasks_by_label` starts from a rare one instead).
    "label": "EXISTS (SELECT 1 FROM queue_labels m"
    " WHERE m.queue_id = queues.id AND m.key = ${0} AND m.value = ${1})",
}
# What a change may set (`update_queue`, `update_schedule`).
QUEUE_CHANGEABLE = frozenset(
    {
        "state",
        "estimate_execution_at",
        "estimate_end_at",
        "paused_at",
        "retry_count",
        "retry_limit",
        "request",
        "metadata",
        "flow_key",
        "flow_parallelism",
        "flow_rate",
        "release_delay",
        "labels",
        "method",
        "target",
        "destination",
    }
)
SCHEDULE_CHANGEABLE = frozenset(
    {"state", "cron", "timezone", "next_run_at", "request", "metadata", "labels"}
)
_SQL = Path(__file__).with_name("sql")


def load(engine: str) -> dict[str, str]:
    """`engine`'s statements by name (``common.sql`` and its own file), fragments in place,
    `$n` as written."""
    texts: dict[str, str] = {}
    for file in ("common.sql", f"{engine}.sql"):
        parts = _BLOCK.split((_SQL / file).read_text())
        for name, body in zip(parts[1::2], parts[2::2], strict=True):
            if name in texts:
                raise ValueError(f"{file}: {name} is named twice")
            texts[name] = _text(body)
    return texts


def _text(body: str) -> str:
    """A statement without its comments, the shared column lists in place."""
    text = "\n".join(line for line in body.splitlines() if not line.startswith("--"))
    for word, fragment in FRAGMENTS.items():
        text = text.replace(f"@{word}@", fragment)
    return text.strip()


def assignments(columns: tuple[str, ...], allowed: frozenset[str]) -> tuple[tuple[str, str], ...]:
    """The fill-ins of an update of `columns` ($1…$n), the row's id as ${n+1}."""
    unknown = set(columns) - allowed
    if unknown:
        raise ValueError(f"not changeable: {sorted(unknown)}")
    assigned = ", ".join(f"{name} = ${n}" for n, name in enumerate(columns, 1))
    return (("set", assigned), ("id", f"${len(columns) + 1}"))


def listing(
    filters: tuple[str, ...], order: str, descending: bool, *, first: int = 2
) -> tuple[tuple[str, str], ...]:
    """The fill-ins of an owner's task list: $1 the owner, the parameters of each filter of
    `FILTERS` in turn from $`first` (a label takes two), then limit and offset."""
    unknown = set(filters) - FILTERS.keys()
    if unknown or order not in ORDER_COLUMNS:
        raise ValueError(f"not a filter or an order: {sorted(unknown)}, {order}")
    where, n = "", first
    for name in filters:
        taken = 2 if name == "label" else 1
        where += " AND " + FILTERS[name].format(*range(n, n + taken))
        n += taken
    direction = "DESC" if descending else "ASC"
    return (
        ("where", where),
        ("order", f"{ORDER_COLUMNS[order]} {direction}, id {direction}"),
        ("limit", f"${n}"),
        ("offset", f"${n + 1}"),
    )


class Queries:
    """An engine's statements; `qmark` engines (SQLite) get ``?n`` for ``$n``."""

    def __init__(self, engine: str, *, qmark: bool = False) -> None:
        self._texts = load(engine)
        self._qmark = qmark
        self.text = functools.lru_cache(maxsize=512)(self._text)

    def _text(self, name: str, fill: tuple[tuple[str, str], ...] = ()) -> str:
        text = self._texts[name]
        if fill:
            text = text.format_map(dict(fill))
        return _PARAM.sub(r"?\1", text) if self._qmark else text
