"""``docs/http-api.md`` against the app: every documented route exists in the OpenAPI document, every
route of the OpenAPI document is documented, and every example response decodes into the type the
route answers with (or into a problem document)."""

from __future__ import annotations

import json
import re
import typing
from pathlib import Path
from typing import Any

import msgspec
import pytest
from litestar import Litestar, Response
from litestar.routes import HTTPRoute

from entrypoints.http.schemas import Problem
from tests.e2e.conftest import Api

DOC = Path(__file__).resolve().parents[2] / "docs" / "http-api.md"
HEADING = re.compile(r"^### `(GET|POST|PUT|DELETE|PATCH) (/[^`]*)`\s*$", re.MULTILINE)
RESPONSE = re.compile(r"^Response `(\d{3})`[^\n]*\n+```json\n(.*?)\n```", re.MULTILINE | re.DOTALL)
PARAM = re.compile(r"\{[^}]*\}")
NOT_IN_SCHEMA = {("GET", "/openapi.json")}


def _normalize(path: str) -> str:
    return PARAM.sub("{}", path.split("?")[0])


def _sections() -> list[tuple[str, str, str]]:
    text = DOC.read_text(encoding="utf-8")
    matches = list(HEADING.finditer(text))
    ends = [m.start() for m in matches[1:]] + [len(text)]
    return [(m.group(1), m.group(2), text[m.end():end]) for m, end in zip(matches, ends, strict=True)]


def _response_type(app: Litestar, method: str, path: str) -> Any:
    for route in app.routes:
        if isinstance(route, HTTPRoute) and _normalize(route.path) == _normalize(path):
            handler, _ = route.route_handler_map[method]  # type: ignore[index]
            annotation = handler.parsed_fn_signature.return_type.annotation
            if typing.get_origin(annotation) is Response:
                (annotation,) = typing.get_args(annotation)
            return annotation
    raise AssertionError(f"no route {method} {path}")


def test_every_documented_route_exists_and_every_route_is_documented(shared_api: Api) -> None:
    schema = shared_api.client.get("/openapi.json").json()
    in_schema = {(method.upper(), _normalize(path)) for path, ops in schema["paths"].items() for method in ops
                 if method in ("get", "post", "put", "delete", "patch")}
    documented = {(method, _normalize(path)) for method, path, _ in _sections()}
    assert documented - NOT_IN_SCHEMA - in_schema == set(), "documented but not in the app"
    assert in_schema - documented == set(), "in the app but not documented"
    assert shared_api.client.get("/openapi.json").status_code == 200


def test_every_section_has_an_example_request_and_response() -> None:
    for method, path, body in _sections():
        assert "```http" in body or path == "/openapi.json", f"{method} {path} has no example request"
        assert "Response `" in body or path == "/openapi.json", f"{method} {path} has no example response"


@pytest.mark.parametrize(("method", "path", "body"), [pytest.param(*s, id=f"{s[0]} {s[1]}") for s in _sections()])
def test_example_responses_decode(shared_api: Api, method: str, path: str, body: str) -> None:
    app = shared_api.client.app
    for status, example in RESPONSE.findall(body):
        value = json.loads(example)
        if int(status) >= 400:
            msgspec.convert(value, Problem, strict=False)
            continue
        expected = _response_type(app, method, path)
        msgspec.convert(value, expected, strict=False)
