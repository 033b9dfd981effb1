"""The docs' API reference page is generated from the app's own OpenAPI document."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from ftq.services.api.main import create_app

HOOK = Path(__file__).resolve().parents[2] / "docs" / "hooks" / "openapi.py"


def _hook():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("ftq_docs_openapi_hook", HOOK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_route_and_schema_of_the_app_is_on_the_reference_page() -> None:
    document = create_app().openapi()
    page = _hook().render(document)
    for path, operations in document["paths"].items():
        for method in operations:
            assert f"### `{method.upper()} {path}`" in page, (method, path)
    for name in document["components"]["schemas"]:
        assert f"### {name} {{#" in page, name
