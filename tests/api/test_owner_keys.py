"""ADMIN_KEY, key rotation with a grace period, and owner signing secrets."""

from __future__ import annotations

import asyncio
import base64
import logging

import pytest

from tasks_server.crypto import Cipher
from tasks_server.settings import SettingsError, load_settings
from tasks_server.signing_keys import SigningKeys
from tasks_server.store.base import Credentials
from tests.conftest import MakeSettings, open_client, register_owner

ADMIN_KEY = "an-admin-key-that-is-long-enough-0123"


async def test_admin_key_gates_registration(make_settings: MakeSettings) -> None:
    async with open_client(make_settings(admin_key=ADMIN_KEY)) as client:
        body = {"name": "gated"}
        for headers in (
            {},
            {"Authorization": "Bearer " + ADMIN_KEY[:-1]},
            {"Authorization": "Bearer " + ADMIN_KEY + "x"},
            {"Authorization": ADMIN_KEY},
        ):
            response = await client.post("/v1/owners/register", json=body, headers=headers)
            assert response.status_code == 403, headers
            assert response.json()["message"] == "Access denied"
        headers = {"Authorization": "Bearer " + ADMIN_KEY}
        response = await client.post("/v1/owners/register", json=body, headers=headers)
        assert response.status_code == 201


def test_admin_key_needs_32_characters() -> None:
    with pytest.raises(SettingsError, match=r"ADMIN_KEY: .*at least 32"):
        load_settings(admin_key="a" * 31)
    assert load_settings(admin_key="a" * 32).admin_key == "a" * 32


@pytest.mark.parametrize(
    ("host", "admin_key", "warned"),
    [
        ("0.0.0.0", None, True),
        ("::", None, True),
        ("0.0.0.0", ADMIN_KEY, False),
        ("127.0.0.1", None, False),
        ("127.0.0.5", None, False),
        ("::1", None, False),
        ("localhost", None, False),
    ],
)
async def test_open_registration_on_a_public_host_warns(
    make_settings: MakeSettings,
    caplog: pytest.LogCaptureFixture,
    host: str,
    admin_key: str | None,
    warned: bool,
) -> None:
    caplog.set_level(logging.WARNING, logger="tasks_server")
    async with open_client(make_settings(host=host, admin_key=admin_key)):
        pass
    warnings = [r for r in caplog.records if getattr(r, "action", "") == "registration_open"]
    assert bool(warnings) is warned
    if warned:
        assert warnings[0].levelno == logging.WARNING and "ADMIN_KEY" in warnings[0].getMessage()


@pytest.mark.parametrize(
    ("host", "deny", "warned"),
    [
        ("0.0.0.0", None, "loopback and private"),
        ("0.0.0.0", "loopback,link-local,metadata", "private"),
        ("0.0.0.0", "loopback,private,link-local,metadata", None),
        ("127.0.0.1", None, None),
    ],
)
async def test_an_exposed_server_whose_tasks_reach_this_host_warns(
    make_settings: MakeSettings,
    caplog: pytest.LogCaptureFixture,
    host: str,
    deny: str | None,
    warned: str | None,
) -> None:
    caplog.set_level(logging.WARNING, logger="tasks_server")
    extra = {} if deny is None else {"destination_deny": deny}
    async with open_client(make_settings(host=host, admin_key=ADMIN_KEY, **extra)):
        pass
    warnings = [r for r in caplog.records if getattr(r, "action", "") == "destinations_open"]
    assert [w.getMessage() for w in warnings] == (
        []
        if warned is None
        else [
            f"HOST {host} is not a loopback address and DESTINATION_DENY lets tasks reach "
            f"{warned} addresses: a task could call this server's own API or the host's other "
            "services; set DESTINATION_DENY=loopback,private,link-local,metadata"
        ]
    )


def _with_key(headers: dict[str, str], key: str) -> dict[str, str]:
    return {**headers, "Authorization": f"Bearer {key}"}


async def test_key_rotation_keeps_the_old_key_for_the_grace_period(
    make_settings: MakeSettings,
) -> None:
    opened = open_client(make_settings(key_rotation_grace_ms=60_000))
    async with opened as client:
        old = await register_owner(client, "rotor")
        now = [opened.services.auth.clock()]
        opened.services.auth.clock = lambda: now[0]
        response = await client.post("/v1/owners/rotor/key", headers=old)
        assert response.status_code == 200
        key = response.json()["key"]
        assert set(response.json()) == {"key"} and len(key) == 64
        new = _with_key(old, key)
        assert new != old
        for headers in (old, new):
            assert (await client.get("/v1/owners/rotor", headers=headers)).status_code == 200
        now[0] += 60_000
        assert (await client.get("/v1/owners/rotor", headers=old)).status_code == 401
        assert (await client.get("/v1/owners/rotor", headers=new)).status_code == 200


async def test_rotating_another_owners_key_is_404(make_settings: MakeSettings) -> None:
    async with open_client(make_settings()) as client:
        alice = await register_owner(client, "alice")
        await register_owner(client, "bobby")
        assert (await client.post("/v1/owners/bobby/key", headers=alice)).status_code == 404
        assert (await client.post("/v1/owners/alice/key")).status_code == 403


async def test_rotation_is_seen_by_another_process_on_the_database(
    make_settings: MakeSettings,
) -> None:
    settings = make_settings(cluster_mode=True, key_rotation_grace_ms=60_000)
    first, second = open_client(settings), open_client(settings)
    async with first as one, second as two:
        old = await register_owner(one, "shared")
        # The second process caches the old key as current.
        assert (await two.get("/v1/owners/shared", headers=old)).status_code == 200
        key = (await one.post("/v1/owners/shared/key", headers=old)).json()["key"]
        new = _with_key(old, key)
        assert (await two.get("/v1/owners/shared", headers=new)).status_code == 200
        assert (await two.get("/v1/owners/shared", headers=old)).status_code == 200
        # Once the grace has ended there, the old key is refused although it was cached.
        later = first.services.auth.clock() + 60_001
        second.services.auth.clock = lambda: later
        assert (await two.get("/v1/owners/shared", headers=old)).status_code == 401
        assert (await two.get("/v1/owners/shared", headers=new)).status_code == 200


def _raw(secret: str) -> bytes:
    assert secret.startswith("whsec_")
    raw = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    assert len(raw) == 32
    return raw


async def test_signing_secret_rotation_signs_with_both_during_grace(
    make_settings: MakeSettings,
) -> None:
    opened = open_client(make_settings(key_rotation_grace_ms=60_000))
    async with opened as client:
        response = await client.post("/v1/owners/register", json={"name": "signer"})
        body = response.json()
        headers = {"Authorization": f"Bearer {body['key']}", "X-Tasks-Owner-Id": body["id"]}
        keys: SigningKeys = opened.services.signing_keys
        now = [keys.clock()]
        keys.clock = lambda: now[0]
        first = _raw(body["signingSecret"])
        assert await keys.for_owner(body["id"]) == (first,)

        response = await client.post("/v1/owners/signer/signing-secret", headers=headers)
        assert response.status_code == 200 and set(response.json()) == {"signingSecret"}
        second = _raw(response.json()["signingSecret"])
        assert second != first
        assert await keys.for_owner(body["id"]) == (second, first)
        now[0] += 60_000
        assert await keys.for_owner(body["id"]) == (second,)
        other = await register_owner(client, "other")
        response = await client.post("/v1/owners/signer/signing-secret", headers=other)
        assert response.status_code == 404


@pytest.mark.sqlite_only("reads and writes the SQLite tables directly")
async def test_signing_secrets_are_sealed_and_bound_to_their_owner(
    make_settings: MakeSettings,
) -> None:
    opened = open_client(make_settings())
    async with opened as client:
        response = await client.post("/v1/owners/register", json={"name": "sealed"})
        body = response.json()
        db = opened.services.store.sqlite.db
        row = await db.fetchone("SELECT signing_secret FROM owners WHERE id = ?", (body["id"],))
        assert row is not None and _raw(body["signingSecret"]) not in bytes(row[0])
        assert body["signingSecret"].encode() not in bytes(row[0])


@pytest.mark.sqlite_only("reads and writes the SQLite tables directly")
async def test_an_owner_from_before_signing_secrets_gets_one(make_settings: MakeSettings) -> None:
    settings = make_settings()
    opened = open_client(settings)
    async with opened as client:
        owner_id = (await register_owner(client, "legacy"))["X-Tasks-Owner-Id"]
        await opened.services.store.sqlite.db.write(
            lambda conn: conn.execute("UPDATE owners SET signing_secret = NULL")
        )
        keys = opened.services.signing_keys
        keys.forget(owner_id)
        (made,) = await keys.for_owner(owner_id)
        assert len(made) == 32
        cipher = Cipher.for_database(settings.cipher_key, settings.path_sqlite)
        assert await SigningKeys(opened.services.store, cipher).for_owner(owner_id) == (made,)
        assert await keys.for_owner("0" * 26) == ()


async def test_a_burst_of_lookups_reads_the_secrets_once(
    make_settings: MakeSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A thousand attempts of one owner starting together (a burst, or the cache expiring
    under load) share one read of the owner's secrets."""
    opened = open_client(make_settings())
    async with opened as client:
        owner_id = (await register_owner(client, "burst"))["X-Tasks-Owner-Id"]
        store, keys = opened.services.store, opened.services.signing_keys
        reads: list[str] = []
        read = store.signing_secrets

        async def counted(owner: str, missing: bytes | None = None) -> Credentials | None:
            reads.append(owner)
            return await read(owner, missing)

        monkeypatch.setattr(store, "signing_secrets", counted)
        keys.forget(owner_id)
        found = await asyncio.gather(*(keys.for_owner(owner_id) for _ in range(200)))
        assert len(reads) == 1 and len(set(found)) == 1 and len(found[0]) == 1
        keys.forget(owner_id)  # e.g. a rotation here: the next lookup reads again
        assert await keys.for_owner(owner_id) == found[0]
        assert len(reads) == 2


async def test_a_rotation_drops_the_owners_keyed_states_only(make_settings: MakeSettings) -> None:
    """Signing copies a keyed HMAC state per secret, kept with the owner's cached keys: a
    rotation drops that owner's, keeps the others', and no other app in the process sees
    either."""
    settings = make_settings(key_rotation_grace_ms=60_000)
    opened, elsewhere = open_client(settings), open_client(settings)
    async with opened as client, elsewhere:
        signer_headers = await register_owner(client, "rotating")
        owner = signer_headers["X-Tasks-Owner-Id"]
        bystander = (await register_owner(client, "bystander"))["X-Tasks-Owner-Id"]
        keys = opened.services.signing_keys
        (first,) = await keys.for_owner(owner)
        (theirs,) = await keys.for_owner(bystander)
        state, kept = keys.signer(owner, first), keys.signer(bystander, theirs)
        assert keys.signer(owner, first) is state  # made once per read, not per attempt
        other_app = elsewhere.services.signing_keys
        assert await other_app.for_owner(owner) == (first,)
        assert other_app.signer(owner, first) is not state

        response = await client.post("/v1/owners/rotating/signing-secret", headers=signer_headers)
        assert response.status_code == 200
        assert keys.signer(owner, first) is not state
        assert keys.signer(bystander, theirs) is kept
        _, previous = await keys.for_owner(owner)
        assert previous == first and keys.signer(owner, first) is not state
