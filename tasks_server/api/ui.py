"""The dashboard at ``/ui``: static files shipped inside the package, no build step.

The page is plain JavaScript modules and CSS in ``tasks_server/ui/``; it signs in with an
owner id and key and calls the JSON API with them as headers, so these routes need no auth.
``SecurityHeaders`` gives every response under ``/ui`` (and ``/swagger``) a strict CSP.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

UI_DIR = Path(__file__).resolve().parent.parent / "ui"

PAGE_MEDIA_TYPE = "text/html; charset=utf-8"
_MEDIA_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".txt": "text/plain; charset=utf-8",
}


def file_response(path: Path, media_type: str) -> Response:
    # no-cache: a browser revalidates, so an upgraded server's files are seen at once.
    return FileResponse(path, media_type=media_type, headers={"Cache-Control": "no-cache"})


class Assets:
    """The scripts and stylesheets of packaged folders, served by name; anything else is 404.

    The names are listed once, so a request can only reach a file that ships (no path
    traversal, no dot files). Pages are not assets: each has its own route, so its relative
    links resolve one way only.
    """

    def __init__(self, *folders: Path) -> None:
        self._files = {
            path.name: path
            for folder in folders
            for path in sorted(folder.iterdir())
            if path.is_file() and path.suffix in _MEDIA_TYPES and not path.name.startswith(".")
        }

    def response(self, name: str) -> Response:
        path = self._files.get(name)
        if path is None:
            return Response(status_code=404)
        return file_response(path, _MEDIA_TYPES[path.suffix])


_assets = Assets(UI_DIR)


async def page(request: Request) -> Response:
    return file_response(UI_DIR / "index.html", PAGE_MEDIA_TYPE)


async def asset(request: Request) -> Response:
    return _assets.response(request.path_params["name"])


routes = [
    Route("/ui", page, methods=["GET"]),
    Route("/ui/{name}", asset, methods=["GET"]),
]
