"""Two servers on one database (cluster mode): a change made through one reaches the task
wherever it is leased, and a task runs once."""

from __future__ import annotations

import httpx

from tests.api.test_queues import register, task, wait_state
from tests.conftest import MakeSettings, open_client, register_owner
from tests.target import Step, Target


async def test_pause_and_execute_reach_the_lease_holder(make_settings: MakeSettings) -> None:
    settings = make_settings(cluster_mode=True)
    with Target() as target:
        async with open_client(settings) as a, open_client(settings) as b:
            owner = await register_owner(a)
            # Registered through A, due within the lease window: A holds it.
            created = await register(a, owner, task(f"{target.url}/held", executionDelay=1500))
            queue_id = created["id"]
            assert (await b.patch(f"/v1/queues/{queue_id}/pause", headers=owner)).status_code == 200
            marker = await register(b, owner, task(f"{target.url}/marker", executionDelay=1600))
            await wait_state(b, owner, marker["id"], "SUCCESS")
            assert target.hits_for("/held") == []  # A dropped it although B paused it
            await b.patch(f"/v1/queues/{queue_id}/resume", headers=owner)
            assert (
                await b.post(f"/v1/queues/{queue_id}/execute", headers=owner)
            ).status_code == 200
            await target.wait_hits("/held", 1)
            await wait_state(a, owner, queue_id, "SUCCESS")
            assert len(target.hits_for("/held")) == 1


async def test_revoke_aborts_an_attempt_in_another_process(make_settings: MakeSettings) -> None:
    settings = make_settings(cluster_mode=True)
    with Target() as target:
        target.script("/slow", Step(delay_ms=20_000))
        async with open_client(settings) as a, open_client(settings) as b:
            owner = await register_owner(a)
            created = await register(a, owner, task(f"{target.url}/slow"))
            await target.wait_hits("/slow", 1)
            response = await b.patch(f"/v1/queues/{created['id']}/revoke", headers=owner)
            assert response.status_code == 200
            await target.wait_disconnect("/slow")
            final = (await a.get(f"/v1/queues/{created['id']}", headers=owner)).json()
            assert (final["state"], final["statusCode"]) == ("REVOKED", 0)


async def test_many_tasks_run_once_across_two_processes(make_settings: MakeSettings) -> None:
    settings = make_settings(cluster_mode=True)
    with Target() as target:
        async with open_client(settings) as a, open_client(settings) as b:
            owner = await register_owner(a)
            clients: list[httpx.AsyncClient] = [a, b]
            ids = [
                (
                    await register(
                        clients[n % 2],
                        owner,
                        task(f"{target.url}/once/{n}", executionDelay=2500 + n),
                    )
                )["id"]
                for n in range(200)
            ]
            for queue_id in ids:
                await wait_state(a, owner, queue_id, "SUCCESS", timeout=20)
            assert sorted(hit.queue_id for hit in target.hits) == sorted(ids)


async def test_edit_and_execute_of_a_task_in_flight_elsewhere_answer_422(
    make_settings: MakeSettings,
) -> None:
    """SPEC §9.1: the open attempt row is what "in flight" means, in every process."""
    settings = make_settings(cluster_mode=True)
    with Target() as target:
        target.script("/busy", Step(delay_ms=1500))
        async with open_client(settings) as a, open_client(settings) as b:
            owner = await register_owner(a)
            created = await register(a, owner, task(f"{target.url}/busy"))
            queue_id = created["id"]
            await target.wait_hits("/busy", 1)
            edit = await b.patch(
                f"/v1/queues/{queue_id}", json={"metadata": {"k": "v"}}, headers=owner
            )
            assert edit.status_code == 422, edit.text
            assert "being executed" in edit.json()["message"]
            execute = await b.post(f"/v1/queues/{queue_id}/execute", headers=owner)
            assert execute.status_code == 422
            await wait_state(b, owner, queue_id, "SUCCESS")
            assert len(target.hits_for("/busy")) == 1
