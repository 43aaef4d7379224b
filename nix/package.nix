# tasks-server as a Nix package: `nix-build nix` (see default.nix).
# Every runtime dependency in pyproject.toml comes from the same Python package set; pycurl
# from nixpkgs links nixpkgs' curl (OpenSSL, with NTLM, unlike the PyPI pycurl wheel).
{
  lib,
  buildPythonApplication,
  hatchling,
  curl,
  starlette,
  uvicorn,
  aiosqlite,
  asyncpg,
  pycurl,
  boto3,
  pydantic,
  pydantic-settings,
  orjson,
  python-ulid,
  cryptography,
  python-dateutil,
  croniter,
  prometheus-client,
  tzdata,
  argon2-cffi,
  # nixpkgs' curl has no c-ares, so the task option `dnsServer` is refused (400); set this to
  # true to rebuild curl and pycurl with it.
  withCAres ? false,
}:

let
  pyproject = builtins.fromTOML (builtins.readFile ../pyproject.toml);
  version = lib.head (
    builtins.match ".*__version__ = \"([^\"]+)\".*" (builtins.readFile ../tasks_server/__init__.py)
  );
  pycurl' =
    if withCAres then pycurl.override { curl = curl.override { c-aresSupport = true; }; } else pycurl;
in
buildPythonApplication {
  pname = "tasks-server";
  inherit version;
  pyproject = true;

  # Only what the wheel needs: a working tree's .venv, databases and caches stay out of the store.
  src = lib.fileset.toSource {
    root = ./..;
    fileset = lib.fileset.unions [
      ../pyproject.toml
      ../README.md
      ../tasks_server
    ];
  };

  build-system = [ hatchling ];

  dependencies = [
    starlette
    uvicorn
    aiosqlite
    asyncpg
    pycurl'
    boto3
    pydantic
    pydantic-settings
    orjson
    python-ulid
    cryptography
    python-dateutil
    croniter
    prometheus-client
    tzdata
    argon2-cffi
    httpx
    typer
    rich
  ]
  # uvicorn[standard]: the server runs on uvloop and httptools.
  ++ uvicorn.optional-dependencies.standard;

  # The suite starts real servers and needs the dev tools; run it in nix/shell.nix instead.
  doCheck = false;
  pythonImportsCheck = [
    "tasks_server"
    "tasks_server.cli"
    "tasks_server.client.cli"
  ];

  meta = {
    description = pyproject.project.description;
    license = lib.licenses.mit;
    mainProgram = "tasks-server";
    platforms = lib.platforms.unix;
  };
}
