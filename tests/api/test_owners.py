"""The owner routes, under their names and under the original's later ones (1.0.0-beta.4:
`/v1/tasks/...` and `X-Task-Id`), which are aliases of them (SPEC §19.1)."""

import asyncio
from dataclasses import dataclass

import httpx
import pytest


@dataclass(frozen=True)
class Names:
    base: str  # the routes' prefix
    id_header: str  # the header naming the owner

    def headers(self, key: str, owner_id: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}", self.id_header: owner_id}


@pytest.fixture(
    params=[Names("/v1/owners", "X-Tasks-Owner-Id"), Names("/v1/tasks", "X-Task-Id")],
    ids=["owners", "tasks-alias"],
)
def names(request: pytest.FixtureRequest) -> Names:
    return request.param  # type: ignore[no-any-return]


async def register_owner(client: httpx.AsyncClient, names: Names, name: str) -> dict[str, str]:
    response = await client.post(f"{names.base}/register", json={"name": name})
    assert response.status_code == 201, response.text
    body = response.json()
    return names.headers(body["key"], body["id"])


async def test_register_returns_id_and_key_once(client: httpx.AsyncClient, names: Names) -> None:
    response = await client.post(f"{names.base}/register", json={"name": "my-app-1"})
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"id", "key", "signingSecret"}
    assert len(body["id"]) == 26 and len(body["key"]) == 64 and body["key"].isalnum()
    assert body["signingSecret"].startswith("whsec_")
    headers = names.headers(body["key"], body["id"])
    owner = (await client.get(f"{names.base}/my-app-1", headers=headers)).json()
    assert owner["id"] == body["id"] and owner["name"] == "my-app-1"
    assert "key" not in owner
    assert owner["tasksInQueue"] == 0 and owner["tasksInQueueLimit"] == 1000
    assert isinstance(owner["createdAt"], int)


@pytest.mark.parametrize(
    "name",
    ["abcd", "a" * 33, "1abcde", "-abcde", "abcde-", "ab--cd", "ABCDE", "ab_cd", "", "abcde\n"],
)
async def test_register_rejects_bad_names(
    client: httpx.AsyncClient, names: Names, name: str
) -> None:
    response = await client.post(f"{names.base}/register", json={"name": name})
    assert response.status_code == 400
    body = response.json()
    assert body["action"] == "Do not retry without fixing the problem"
    assert body["message"][0]["path"] == "name"


@pytest.mark.parametrize("body", [{}, {"name": "hello", "extra": 1}, [], "x", {"name": 12345}])
async def test_register_rejects_bad_bodies(
    client: httpx.AsyncClient, names: Names, body: object
) -> None:
    assert (await client.post(f"{names.base}/register", json=body)).status_code == 400


async def test_malformed_json_is_400(client: httpx.AsyncClient, names: Names) -> None:
    response = await client.post(f"{names.base}/register", content=b"{nope")
    assert response.status_code == 400
    assert response.json()["message"].startswith("Malformed JSON")


async def test_taken_name_is_409_even_when_racing(client: httpx.AsyncClient, names: Names) -> None:
    responses = await asyncio.gather(
        *(client.post(f"{names.base}/register", json={"name": "racer"}) for _ in range(10))
    )
    codes = sorted(r.status_code for r in responses)
    assert codes == [201] + [409] * 9
    (created,) = [r for r in responses if r.status_code == 201]
    assert created.json()["key"]  # the one that won got the owner's key


async def test_auth_headers(client: httpx.AsyncClient, names: Names) -> None:
    headers = await register_owner(client, names, "alice")
    assert (await client.get(f"{names.base}/alice", headers=headers)).status_code == 200

    wrong_key = {**headers, "Authorization": "Bearer " + "A" * 64}
    response = await client.get(f"{names.base}/alice", headers=wrong_key)
    assert response.status_code == 401
    assert response.json() == {
        "action": "The request should not be repeated",
        "message": "Invalid credentials",
    }

    unknown = {**headers, names.id_header: "01ARZ3NDEKTSV4RRFFQ69G5FAV"}
    assert (await client.get(f"{names.base}/alice", headers=unknown)).status_code == 403
    for bad in (
        {},
        {names.id_header: headers[names.id_header]},
        {**headers, "Authorization": headers["Authorization"][:-1]},
        {**headers, "Authorization": headers["Authorization"].replace("Bearer", "Basic")},
        {**headers, names.id_header: "not-a-ulid"},
    ):
        assert (await client.get(f"{names.base}/alice", headers=bad)).status_code == 403


async def test_owner_sees_only_itself(client: httpx.AsyncClient, names: Names) -> None:
    alice = await register_owner(client, names, "alice")
    await register_owner(client, names, "bobby")
    response = await client.get(f"{names.base}/bobby", headers=alice)
    assert response.status_code == 404 and response.json() == {}
    assert (await client.delete(f"{names.base}/bobby", headers=alice)).status_code == 404


async def test_delete_owner(client: httpx.AsyncClient, names: Names) -> None:
    headers = await register_owner(client, names, "alice")
    response = await client.delete(f"{names.base}/alice", headers=headers)
    assert response.status_code == 200 and response.json() == {"status": "Done"}
    assert (await client.get(f"{names.base}/alice", headers=headers)).status_code == 403
    # The name is free again, with a new id and key.
    again = await register_owner(client, names, "alice")
    assert again != headers


async def test_a_trailing_newline_is_not_a_second_owner(
    client: httpx.AsyncClient, names: Names
) -> None:
    await register_owner(client, names, "dupname")
    response = await client.post(f"{names.base}/register", json={"name": "dupname\n"})
    assert response.status_code == 400
    assert response.json()["message"][0]["path"] == "name"


@pytest.mark.parametrize("name", ["abcd", "ABCDE", "ab--cd", "alice%0A"])
async def test_a_malformed_name_in_the_path_is_400(
    client: httpx.AsyncClient, names: Names, name: str
) -> None:
    headers = await register_owner(client, names, "alice")
    for method in ("GET", "DELETE"):
        response = await client.request(method, f"{names.base}/{name}", headers=headers)
        assert response.status_code == 400, (method, response.text)
        assert response.json()["message"][0]["path"] == "name"
    response = await client.post(f"/v1/owners/{name}/key", headers=headers)
    assert response.status_code == 400


async def test_either_owner_header_authenticates_the_queue_routes(
    client: httpx.AsyncClient, names: Names
) -> None:
    headers = await register_owner(client, names, "alice")
    task = {"httpRequest": {"url": "http://127.0.0.1:9/x", "method": "GET"}}
    response = await client.post("/v1/queues/register", json=task, headers=headers)
    assert response.status_code == 201, response.text
    queue_id = response.json()["id"]
    assert (await client.get(f"/v1/queues/{queue_id}", headers=headers)).status_code == 200
