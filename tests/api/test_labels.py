"""Labels and list rows that tell tasks apart (SPEC §19.4): method, redacted target, labels,
and the list's filters, on both stores."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.api.test_queues import Headers, register, wait_state
from tests.api.test_schedules import create, schedule
from tests.conftest import register_owner
from tests.target import Step, Target


@pytest.fixture
async def owner(client: httpx.AsyncClient) -> Headers:
    return await register_owner(client, "label-owner")


def labelled(url: str, labels: dict[str, str] | None = None, **config: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"httpRequest": {"url": url, "method": "PUT"}, "config": config}
    if labels is not None:
        body["labels"] = labels
    return body


async def listed(client: httpx.AsyncClient, owner: Headers, query: str = "") -> list[Any]:
    response = await client.get(f"/v1/queues?limit=100{query}", headers=owner)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def test_summaries_show_method_redacted_target_and_labels(
    client: httpx.AsyncClient, owner: Headers, target: Target
) -> None:
    url = target.url.replace("http://", "http://user:pw@") + "/hook?token=s3cret&x=1"
    created = await register(
        client, owner, labelled(url, {"env": "prod", "team": "billing"}, executionDelay=60_000)
    )
    assert created["labels"] == {"env": "prod", "team": "billing"}
    (row,) = await listed(client, owner)
    assert row["method"] == "PUT" and row["labels"] == {"env": "prod", "team": "billing"}
    assert "s3cret" not in row["target"] and "pw" not in row["target"]
    assert row["target"].endswith("/hook?token=***&x=***")
    assert row["target"].startswith("http://user:***@127.0.0.1:")
    # The original's fields are all still there.
    assert {"id", "state", "createdAt", "statusCode", "estimateEndAt"} <= row.keys()


async def test_label_filters_and_patch(
    client: httpx.AsyncClient, owner: Headers, target: Target
) -> None:
    later = {"executionDelay": 60_000}
    prod_a = await register(
        client, owner, labelled(target.url, {"env": "prod", "app": "a"}, **later)
    )
    prod_b = await register(
        client, owner, labelled(target.url, {"env": "prod", "app": "b"}, **later)
    )
    dev = await register(client, owner, labelled(target.url, {"env": "dev"}, **later))
    bare = await register(client, owner, labelled(target.url, **later))
    assert bare["labels"] is None

    def ids(rows: list[Any]) -> set[str]:
        return {row["id"] for row in rows}

    assert ids(await listed(client, owner, "&label=env:prod")) == {prod_a["id"], prod_b["id"]}
    both = await listed(client, owner, "&label=env:prod&label=app:b")
    assert ids(both) == {prod_b["id"]}
    assert await listed(client, owner, "&label=env:nope") == []

    # A merge patch changes labels (and the filter follows); null removes one.
    response = await client.patch(
        f"/v1/queues/{dev['id']}", json={"labels": {"env": "prod", "app": "b"}}, headers=owner
    )
    assert response.status_code == 200, response.text
    assert response.json()["labels"] == {"env": "prod", "app": "b"}
    both = await listed(client, owner, "&label=env:prod&label=app:b")
    assert ids(both) == {prod_b["id"], dev["id"]}
    response = await client.patch(
        f"/v1/queues/{dev['id']}", json={"labels": {"app": None}}, headers=owner
    )
    assert response.json()["labels"] == {"env": "prod"}
    assert ids(await listed(client, owner, "&label=app:b")) == {prod_b["id"]}
    # Deleted tasks leave the filter.
    await client.delete(f"/v1/queues/{prod_b['id']}", headers=owner)
    assert ids(await listed(client, owner, "&label=app:b")) == set()

    # Another owner's labels are not this owner's.
    other = await register_owner(client, "label-other")
    await register(client, other, labelled(target.url, {"env": "prod"}, **later))
    assert len(await listed(client, owner, "&label=env:prod")) == 2


async def test_outcome_status_code_and_created_range_filters(
    client: httpx.AsyncClient, owner: Headers, target: Target
) -> None:
    target.script("/fail", Step(status=503))
    ok = await register(client, owner, labelled(f"{target.url}/ok"))
    failed = await register(client, owner, labelled(f"{target.url}/fail"))
    waiting = await register(client, owner, labelled(target.url, executionDelay=60_000))
    await wait_state(client, owner, ok["id"], "SUCCESS")
    await wait_state(client, owner, failed["id"], "ERROR")

    def ids(rows: list[Any]) -> list[str]:
        return [row["id"] for row in rows]

    assert ids(await listed(client, owner, "&outcome=FAILURE")) == [failed["id"]]
    assert ids(await listed(client, owner, "&outcome=success")) == [ok["id"]]
    assert ids(await listed(client, owner, "&statusCode=503")) == [failed["id"]]
    assert ids(await listed(client, owner, "&statusCode=0")) == [waiting["id"]]
    assert ids(await listed(client, owner, "&statusCode=200&label=env:x")) == []
    start = failed["createdAt"]
    ranged = await listed(client, owner, f"&createdFrom={start}&createdTo={start}")
    assert failed["id"] in ids(ranged) and all(row["createdAt"] == start for row in ranged)
    before = await listed(client, owner, f"&createdTo={start - 1}")
    assert all(row["createdAt"] < start for row in before) and failed["id"] not in ids(before)


@pytest.mark.parametrize(
    "query",
    [
        "label=nocolon",
        "label=:v",
        "label=k:",
        "label=" + "k" * 65 + ":v",
        "outcome=MAYBE",
        "statusCode=1000",
        "statusCode=abc",
        "createdFrom=-1",
        "createdFrom=99999999999999999999999",
        "createdFrom=10&createdTo=5",
    ],
)
async def test_bad_filters_are_400(client: httpx.AsyncClient, owner: Headers, query: str) -> None:
    response = await client.get(f"/v1/queues?{query}", headers=owner)
    assert response.status_code == 400, response.text


@pytest.mark.parametrize(
    "labels",
    [
        {f"k{n}": "v" for n in range(17)},
        {"bad key": "v"},
        {"k:colon": "v"},
        {"": "v"},
        {"k": ""},
        {"k": "x" * 257},
        {"k": "line\nbreak"},
        {"k": 1},
        ["k", "v"],
    ],
)
async def test_bad_labels_are_400(
    client: httpx.AsyncClient, owner: Headers, target: Target, labels: Any
) -> None:
    body = {"httpRequest": {"url": target.url, "method": "GET"}, "labels": labels}
    response = await client.post("/v1/queues/register", json=body, headers=owner)
    assert response.status_code == 400, response.text
    assert "labels" in response.text


async def test_schedules_carry_labels_to_their_tasks(
    client: httpx.AsyncClient, owner: Headers, target: Target
) -> None:
    url = f"{target.url}/tick?key=hidden"
    created = await create(client, owner, schedule(url, "*/2 * * * * *", labels={"source": "cron"}))
    assert created["labels"] == {"source": "cron"}
    (row,) = (await client.get("/v1/schedules", headers=owner)).json()
    assert row["labels"] == {"source": "cron"} and row["method"] == "POST"
    assert row["target"].endswith("/tick?key=***")
    await target.wait_hits("/tick", 1, timeout=10)
    tasks = await listed(client, owner, "&label=source:cron")
    assert tasks and all(task["scheduleId"] == created["id"] for task in tasks)
    assert tasks[0]["labels"] == {"source": "cron"} and tasks[0]["target"] == row["target"]

    edited = await client.patch(
        f"/v1/schedules/{created['id']}", json={"labels": {"source": "edited"}}, headers=owner
    )
    assert edited.status_code == 200 and edited.json()["labels"] == {"source": "edited"}
    bad = await client.patch(
        f"/v1/schedules/{created['id']}", json={"labels": {"a b": "c"}}, headers=owner
    )
    assert bad.status_code == 400
