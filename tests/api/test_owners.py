import asyncio

import httpx
import pytest

from tests.conftest import register_owner


async def test_register_returns_id_and_key_once(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/owners/register", json={"name": "my-app-1"})
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"id", "key", "signingSecret"}
    assert len(body["id"]) == 26 and len(body["key"]) == 64 and body["key"].isalnum()
    assert body["signingSecret"].startswith("whsec_")
    headers = {"Authorization": f"Bearer {body['key']}", "X-Tasks-Owner-Id": body["id"]}
    owner = (await client.get("/v1/owners/my-app-1", headers=headers)).json()
    assert owner["id"] == body["id"] and owner["name"] == "my-app-1"
    assert "key" not in owner
    assert owner["tasksInQueue"] == 0 and owner["tasksInQueueLimit"] == 1000
    assert isinstance(owner["createdAt"], int)


@pytest.mark.parametrize(
    "name",
    ["abcd", "a" * 33, "1abcde", "-abcde", "abcde-", "ab--cd", "ABCDE", "ab_cd", "", "abcde\n"],
)
async def test_register_rejects_bad_names(client: httpx.AsyncClient, name: str) -> None:
    response = await client.post("/v1/owners/register", json={"name": name})
    assert response.status_code == 400
    body = response.json()
    assert body["action"] == "Do not retry without fixing the problem"
    assert body["message"][0]["path"] == "name"


@pytest.mark.parametrize("body", [{}, {"name": "hello", "extra": 1}, [], "x", {"name": 12345}])
async def test_register_rejects_bad_bodies(client: httpx.AsyncClient, body: object) -> None:
    assert (await client.post("/v1/owners/register", json=body)).status_code == 400


async def test_malformed_json_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/owners/register", content=b"{nope")
    assert response.status_code == 400
    assert response.json()["message"].startswith("Malformed JSON")


async def test_taken_name_is_409_even_when_racing(client: httpx.AsyncClient) -> None:
    responses = await asyncio.gather(
        *(client.post("/v1/owners/register", json={"name": "racer"}) for _ in range(10))
    )
    codes = sorted(r.status_code for r in responses)
    assert codes == [201] + [409] * 9
    (created,) = [r for r in responses if r.status_code == 201]
    assert created.json()["key"]  # the one that won got the owner's key


async def test_auth_headers(client: httpx.AsyncClient) -> None:
    headers = await register_owner(client, "alice")
    assert (await client.get("/v1/owners/alice", headers=headers)).status_code == 200

    wrong_key = {**headers, "Authorization": "Bearer " + "A" * 64}
    response = await client.get("/v1/owners/alice", headers=wrong_key)
    assert response.status_code == 401
    assert response.json() == {
        "action": "The request should not be repeated",
        "message": "Invalid credentials",
    }

    unknown = {**headers, "X-Tasks-Owner-Id": "01ARZ3NDEKTSV4RRFFQ69G5FAV"}
    assert (await client.get("/v1/owners/alice", headers=unknown)).status_code == 403
    for bad in (
        {},
        {"X-Tasks-Owner-Id": headers["X-Tasks-Owner-Id"]},
        {**headers, "Authorization": headers["Authorization"][:-1]},
        {**headers, "Authorization": headers["Authorization"].replace("Bearer", "Basic")},
        {**headers, "X-Tasks-Owner-Id": "not-a-ulid"},
    ):
        assert (await client.get("/v1/owners/alice", headers=bad)).status_code == 403


async def test_owner_sees_only_itself(client: httpx.AsyncClient) -> None:
    alice = await register_owner(client, "alice")
    await register_owner(client, "bobby")
    response = await client.get("/v1/owners/bobby", headers=alice)
    assert response.status_code == 404 and response.json() == {}
    assert (await client.delete("/v1/owners/bobby", headers=alice)).status_code == 404


async def test_delete_owner(client: httpx.AsyncClient) -> None:
    headers = await register_owner(client, "alice")
    response = await client.delete("/v1/owners/alice", headers=headers)
    assert response.status_code == 200 and response.json() == {"status": "Done"}
    assert (await client.get("/v1/owners/alice", headers=headers)).status_code == 403
    # The name is free again, with a new id and key.
    again = await register_owner(client, "alice")
    assert again != headers


async def test_a_trailing_newline_is_not_a_second_owner(client: httpx.AsyncClient) -> None:
    await register_owner(client, "dupname")
    response = await client.post("/v1/owners/register", json={"name": "dupname\n"})
    assert response.status_code == 400
    assert response.json()["message"][0]["path"] == "name"


@pytest.mark.parametrize("name", ["abcd", "ABCDE", "ab--cd", "alice%0A"])
async def test_a_malformed_name_in_the_path_is_400(client: httpx.AsyncClient, name: str) -> None:
    headers = await register_owner(client, "alice")
    for method in ("GET", "DELETE"):
        response = await client.request(method, f"/v1/owners/{name}", headers=headers)
        assert response.status_code == 400, (method, response.text)
        assert response.json()["message"][0]["path"] == "name"
    response = await client.post(f"/v1/owners/{name}/key", headers=headers)
    assert response.status_code == 400
