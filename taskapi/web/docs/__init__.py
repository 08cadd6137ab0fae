"""The docs a person or a generator reads: the spec as written, Swagger UI and ReDoc.

/openapi.yaml is the source file itself and /openapi.json the same document as JSON, both with
their components and `$ref`s: Connexion would serve them dereferenced, with `servers` blanked,
and clients generated from them lost every model name. /ui/ is Swagger UI and /redoc is ReDoc,
both offline: their JavaScript comes from installed packages, and the pages ask nothing of any
other host.
"""

from __future__ import annotations

import functools
import hashlib
import json
import mimetypes
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import distribution
from pathlib import Path

import yaml
from connexion.exceptions import ProblemException
from starlette.datastructures import Headers
from starlette.responses import RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from taskapi.resources import parse_spec, spec_path

# The pages under these bring their own policy (web/middleware/headers.py leaves it to them).
DOCS_PREFIXES = ("/ui", "/redoc")

# Scripts and styles from this server only. Both UIs set inline styles (ReDoc through
# styled-components) and draw icons from data: URIs; ReDoc searches in a blob: worker;
# "Try it out" calls this same origin.
DOCS_CSP = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "worker-src 'self' blob:",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)

_PAGES = Path(__file__).resolve().parent / "static"
_SWAGGER_UI = ("flask-swagger-ui", "flask_swagger_ui/dist")
_SWAGGER_UI_FILES = ("swagger-ui-bundle.js", "swagger-ui.css", "index.css", "favicon-32x32.png")
_REDOC = ("flask-openapi-redoc", "flask_openapi_redoc/templates/redoc")
# ReDoc's sidebar footer loads the Redocly logo from a CDN; the same logo ships in the package.
_REDOC_LOGO = (b"https://cdn.redoc.ly/redoc/logo-mini.svg", b"redoc/redoc-logo.svg")


@dataclass(frozen=True)
class _Document:
    body: bytes
    media_type: str
    etag: str

    @classmethod
    def of(cls, body: bytes, media_type: str) -> _Document:
        return cls(body, media_type, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')

    @classmethod
    def read(cls, path: Path, replace: tuple[bytes, bytes] | None = None) -> _Document:
        body = path.read_bytes()
        if replace is not None:
            body = body.replace(*replace)
        media_type, _ = mimetypes.guess_type(path.name)
        return cls.of(body, media_type or "application/octet-stream")

    def response(self, request_headers: Headers, headers: Mapping[str, str]) -> Response:
        """200 with the body, or 304 when the client already has this version."""
        headers = {"ETag": self.etag, "Cache-Control": "no-cache", **headers}
        if self.etag in request_headers.get("if-none-match", ""):
            return Response(status_code=304, headers=headers)
        return Response(self.body, media_type=self.media_type, headers=headers)


class _File:
    """A file served as a _Document, read on its first request: most processes never serve the
    docs, and their scripts weigh megabytes."""

    def __init__(self, path: Path, replace: tuple[bytes, bytes] | None = None) -> None:
        self.path = path
        self.replace = replace

    @functools.cached_property
    def document(self) -> _Document:
        return _Document.read(self.path, self.replace)

    def response(self, request_headers: Headers, headers: Mapping[str, str]) -> Response:
        return self.document.response(request_headers, headers)


def _installed(package: str, directory: str) -> Path:
    """A directory of an installed distribution, found without importing it."""
    path = Path(str(distribution(package).locate_file(directory)))
    if not path.is_dir():
        raise FileNotFoundError(f"{directory} is missing: reinstall {package}")
    return path


class DocsMiddleware:
    """Serves the spec and the docs pages; every other request goes on to the API."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._yaml = spec_path().read_text(encoding="utf-8")
        self._spec = parse_spec(self._yaml)
        swagger_ui = _installed(*_SWAGGER_UI)
        redoc = _installed(*_REDOC)
        swagger_page = _File(_PAGES / "swagger-ui.html")
        self._pages = {
            "/ui/": swagger_page,
            "/ui/index.html": swagger_page,
            "/ui/swagger-initializer.js": _File(_PAGES / "swagger-initializer.js"),
            **{f"/ui/{name}": _File(swagger_ui / name) for name in _SWAGGER_UI_FILES},
            "/redoc": _File(_PAGES / "redoc.html"),
            "/redoc/redoc-initializer.js": _File(_PAGES / "redoc-initializer.js"),
            "/redoc/redoc.standalone.js": _File(
                redoc / "js" / "redoc.standalone.js", replace=_REDOC_LOGO
            ),
            "/redoc/redoc-logo.svg": _File(redoc / "images" / "redoc.svg"),
        }
        self._redirects = {"/ui": "/ui/", "/redoc/": "/redoc"}
        self._specs: dict[str, tuple[_Document, _Document]] = {}
        self._served = {*self._pages, *self._redirects, "/openapi.yaml", "/openapi.json"}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        root: str = scope.get("root_path", "")
        path: str = scope["path"]
        if root and path.startswith(root):
            path = path[len(root) :]
        if path not in self._served:
            await self.app(scope, receive, send)
            return
        if scope["method"] not in ("GET", "HEAD"):
            raise ProblemException(
                status=405, title="Method Not Allowed", headers={"Allow": "GET, HEAD"}
            )
        request_headers = Headers(scope=scope)
        response: Response
        if path in self._redirects:
            response = RedirectResponse(root + self._redirects[path])
        elif path in self._pages:
            csp = {"Content-Security-Policy": DOCS_CSP}
            response = self._pages[path].response(request_headers, csp)
        else:
            as_yaml, as_json = self._spec_documents(root)
            document = as_yaml if path == "/openapi.yaml" else as_json
            response = document.response(request_headers, {})
        await response(scope, receive, send)

    def _spec_documents(self, root: str) -> tuple[_Document, _Document]:
        """The spec as YAML and as JSON; behind a path prefix, its servers start with it."""
        if root not in self._specs:
            spec, text = self._spec, self._yaml  # the file as written, comments and all
            if root:
                servers = [
                    {**server, "url": root.rstrip("/") + server["url"].rstrip("/")}
                    if server["url"].startswith("/")
                    else server
                    for server in spec["servers"]
                ]
                spec = {**spec, "servers": servers}
                text = yaml.safe_dump(spec, sort_keys=False, allow_unicode=True)
            self._specs[root] = (
                _Document.of(text.encode(), "application/yaml"),
                _Document.of(json.dumps(spec, indent=2).encode(), "application/json"),
            )
        return self._specs[root]
