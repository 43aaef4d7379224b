"""The contract suite keeps up with the protocol: every `TaskStore` method is called here."""

from __future__ import annotations

import inspect
from pathlib import Path

from tasks_server.store.base import TaskStore


def test_every_protocol_method_is_exercised_by_the_suite() -> None:
    methods = {name for name, _ in inspect.getmembers(TaskStore, inspect.isfunction)}
    methods = {name for name in methods if not name.startswith("_")}
    suite = "".join(path.read_text() for path in Path(__file__).parent.glob("*.py"))
    missing = sorted(name for name in methods if f"store.{name}(" not in suite)
    assert not missing, f"TaskStore methods without a contract test: {missing}"
    assert {"claim", "record", "fire"} <= methods
