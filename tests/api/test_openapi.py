"""/openapi.json is a valid OpenAPI 3.1 document covering every route; /swagger is opt-in."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
from openapi_spec_validator import OpenAPIV31SpecValidator
from starlette.routing import Route

from tasks_server.api.security import SWAGGER_CSP
from tasks_server.app import create_app
from tasks_server.models.owners import OwnerRegister
from tasks_server.models.queues import QueueRegistration
from tasks_server.openapi import build_openapi
from tests.conftest import MakeSettings, open_client, register_owner


async def test_document_is_valid_openapi_31(client: httpx.AsyncClient) -> None:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    document = response.json()
    assert document["openapi"].startswith("3.1.")
    OpenAPIV31SpecValidator(document).validate()
    assert document == build_openapi()


def test_every_route_is_documented(make_settings: MakeSettings) -> None:
    app = create_app(make_settings())
    paths = build_openapi()["paths"]
    app_operations = {
        (route.path, method.lower())
        for route in app.routes
        if isinstance(route, Route)
        for method in route.methods or ()
        if method != "HEAD"
    }
    documented = {
        (path, method)
        for path, item in paths.items()
        for method in item
        if method in {"get", "put", "post", "patch", "delete"}
    }
    assert app_operations == documented


def test_shared_components_and_auth() -> None:
    document = build_openapi()
    schemas = document["components"]["schemas"]
    for name in (
        "QueueRegistration",
        "QueueOut",
        "QueueSummary",
        "QueueConfigOut",
        "OwnerRegister",
        "OwnerRegistered",
        "OwnerOut",
        "ErrorBody",
        "Done",
    ):
        assert name in schemas
    # camelCase aliases, as on the wire
    assert "httpRequest" in schemas["QueueRegistration"]["properties"]
    assert "tasksInQueueLimit" in schemas["OwnerOut"]["properties"]
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearer"] == {**schemes["bearer"], "type": "http", "scheme": "bearer"}
    assert schemes["ownerId"]["in"] == "header"
    assert schemes["ownerId"]["name"] == "X-Tasks-Owner-Id"

    register = document["paths"]["/v1/queues/register"]["post"]
    assert register["security"] == [{"bearer": [], "ownerId": []}, {"bearer": [], "taskId": []}]
    assert schemes["taskId"] == {**schemes["taskId"], "in": "header", "name": "X-Task-Id"}
    (id_param,) = document["paths"]["/v1/queues/{id}"]["parameters"]
    for queue_id in ("01ARZ3NDEKTSV4RRFFQ69G5FAV", "1A250FA96521796654929490"):  # imported
        assert re.fullmatch(id_param["schema"]["pattern"], queue_id)
    alias = document["paths"]["/v1/tasks/register"]["post"]
    assert alias["operationId"] == "registerOwnerAsTask"
    assert alias["requestBody"] == document["paths"]["/v1/owners/register"]["post"]["requestBody"]
    assert register["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/QueueRegistration"
    }
    error = {"$ref": "#/components/schemas/ErrorBody"}
    for code in ("400", "401", "403", "413", "422", "429", "500"):
        assert register["responses"][code]["content"]["application/json"]["schema"] == error
    get = document["paths"]["/v1/queues/{id}"]["get"]
    assert get["responses"]["404"]["content"]["application/json"]["schema"] == {
        "type": "object",
        "maxProperties": 0,
    }
    # Open unless ADMIN_KEY is set.
    assert document["paths"]["/v1/owners/register"]["post"]["security"] == [{}, {"admin": []}]
    assert schemes["admin"] == {**schemes["admin"], "type": "http", "scheme": "bearer"}
    names = [p["name"] for p in document["paths"]["/v1/queues"]["get"]["parameters"]]
    added = ["label", "outcome", "statusCode", "createdFrom", "createdTo"]  # SPEC §19.4
    assert names == ["limit", "offset", "order", "sort", "state", "scheduleId", "batchId", *added]


async def test_documented_shapes_match_real_responses(client: httpx.AsyncClient) -> None:
    """Spot check: what the server answers has the properties the document promises."""
    schemas = build_openapi()["components"]["schemas"]
    headers = await register_owner(client)
    owner = (await client.get("/v1/owners/owner-one", headers=headers)).json()
    assert set(owner) == set(schemas["OwnerOut"]["properties"])
    error = (await client.get("/v1/queues", headers={})).json()
    assert set(error) == set(schemas["ErrorBody"]["properties"])


async def test_swagger_is_404_by_default(client: httpx.AsyncClient) -> None:
    response = await client.get("/swagger")
    assert response.status_code == 404 and response.content == b""


async def test_swagger_page_when_enabled(make_settings: MakeSettings) -> None:
    """The page loads its viewer and initializer from the server: no inline script, no CDN."""
    async with open_client(make_settings(swagger_ui=True)) as client:
        response = await client.get("/swagger")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        assert response.headers["content-security-policy"] == SWAGGER_CSP
        sources = re.findall(r'(?:src|href)="([^"]+)"', response.text)
        assert sources == [
            "swagger/swagger-ui.css",
            "swagger/swagger-page.css",
            "swagger/swagger-ui-bundle.js",
            "swagger/swagger-init.js",
        ]
        assert "<script>" not in response.text and "style=" not in response.text
        for source in sources:
            asset = await client.get(f"/{source}")
            assert asset.status_code == 200, source
            assert asset.headers["content-security-policy"] == SWAGGER_CSP
            assert "sourceMappingURL" not in asset.text
        init = (await client.get("/swagger/swagger-init.js")).text
        assert 'url: new URL("openapi.json", document.baseURI).href' in init
        assert (await client.get("/swagger/VERSION")).status_code == 404
        assert (await client.get("/swagger/index.html")).status_code == 404


async def test_swagger_assets_are_404_when_off(client: httpx.AsyncClient) -> None:
    response = await client.get("/swagger/swagger-ui-bundle.js")
    assert response.status_code == 404 and response.content == b""


def _properties(node: object, where: str = "#") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every property schema in the document, with its JSON pointer."""
    if isinstance(node, dict):
        for name, schema in (node.get("properties") or {}).items():
            yield f"{where}/properties/{name}", schema
        for key, value in node.items():
            yield from _properties(value, f"{where}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _properties(value, f"{where}/{index}")


def test_every_property_has_a_description() -> None:
    missing = [
        where
        for where, schema in _properties(build_openapi())
        if not (isinstance(schema, dict) and str(schema.get("description", "")).strip())
    ]
    assert missing == []


def test_register_bodies_have_valid_examples() -> None:
    document = build_openapi()
    for path, model in (
        ("/v1/queues/register", QueueRegistration),
        ("/v1/owners/register", OwnerRegister),
    ):
        content = document["paths"][path]["post"]["requestBody"]["content"]["application/json"]
        examples = content["examples"]
        assert examples, path
        for example in examples.values():
            assert example["summary"]
            model.model_validate(example["value"], context={"now": 0})
