# nix-build nix                      → ./result/bin/tasks-server
# nix-build nix --arg pkgs 'import (fetchTarball "https://github.com/NixOS/nixpkgs/archive/nixos-25.05.tar.gz") { }'
#   to build against a fixed nixpkgs instead of the <nixpkgs> channel.
{
  pkgs ? import <nixpkgs> { },
  python3Packages ? pkgs.python311Packages,
  withCAres ? false,
}:

python3Packages.callPackage ./package.nix { inherit withCAres; }
