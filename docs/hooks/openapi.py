"""MkDocs hook: `reference/openapi.md`, generated at build time from the app's OpenAPI document.

The page exists only in memory (a generated `File`), so nothing generated is committed. The
document comes from `create_app().openapi()`: building it needs no database, broker or provider.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files

PAGE = "reference/openapi.md"
METHODS = ("get", "post", "put", "patch", "delete", "head", "options", "trace")

log = logging.getLogger("mkdocs.hooks.openapi")


def on_files(files: Files, config: MkDocsConfig) -> Files:
    """Add the generated API reference page (replacing any file of that name)."""
    existing = files.get_file_from_path(PAGE)
    if existing is not None:
        files.remove(existing)
    files.append(File.generated(config, PAGE, content=render(load_openapi())))
    return files


def load_openapi() -> dict[str, Any]:
    """The OpenAPI document of a freshly built app (default, development settings)."""
    from ftq.services.api.main import create_app

    return dict(create_app().openapi())


# --- rendering -------------------------------------------------------------------------------


def render(spec: dict[str, Any]) -> str:
    """The whole page: operations per tag, then every component schema."""
    info = spec.get("info", {})
    out = [
        "# OpenAPI reference",
        "",
        "!!! note",
        "    Generated when the site is built, from the app's own OpenAPI document "
        f"(OpenAPI {spec.get('openapi', '?')}, {info.get('title', 'ftq')} "
        f"{info.get('version', '')}). The hand-written overview is [API](../api.md).",
        "",
    ]
    if info.get("description"):
        out += [info["description"], ""]

    by_tag: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
    for path, item in spec.get("paths", {}).items():
        for method in METHODS:
            if method in item:
                operation = item[method]
                for tag in operation.get("tags") or ["other"]:
                    by_tag.setdefault(tag, []).append((path, method, operation))

    declared = [t["name"] for t in spec.get("tags", []) if t.get("name") in by_tag]
    for tag in declared + [t for t in by_tag if t not in declared]:
        out += [f"## {tag}", ""]
        for path, method, operation in by_tag[tag]:
            out += _operation(path, method, operation)

    schemas = spec.get("components", {}).get("schemas", {})
    if schemas:
        out += ["## Schemas", ""]
        for name in sorted(schemas, key=str.lower):
            out += _schema(name, schemas[name])
    return "\n".join(out) + "\n"


def _operation(path: str, method: str, op: dict[str, Any]) -> list[str]:
    anchor = _anchor("op", op.get("operationId") or f"{method}-{path}")
    out = [f"### `{method.upper()} {path}` {{#{anchor}}}", ""]
    if op.get("summary"):
        out += [f"**{op['summary']}**", ""]
    if op.get("deprecated"):
        out += ["!!! warning", "    Deprecated.", ""]
    if op.get("description"):
        out += [op["description"].strip(), ""]

    params = op.get("parameters", [])
    if params:
        out += [
            "Parameters:",
            "",
            "| name | in | required | type | description |",
            "|---|---|---|---|---|",
        ]
        for p in params:
            schema = p.get("schema", {})
            description = p.get("description") or schema.get("description", "")
            out.append(
                _row(
                    f"`{p.get('name', '')}`",
                    p.get("in", ""),
                    "yes" if p.get("required") else "no",
                    _type(schema),
                    description,
                )
            )
        out.append("")

    body = op.get("requestBody")
    if body:
        required = " (required)" if body.get("required") else ""
        out += [f"Request body{required}:", ""]
        if body.get("description"):
            out += [body["description"], ""]
        for content_type, media in body.get("content", {}).items():
            out.append(f"- `{content_type}`: {_type(media.get('schema', {}))}")
        out.append("")

    responses = op.get("responses", {})
    if responses:
        out += ["Responses:", ""]
        for status, response in responses.items():
            content = response.get("content", {})
            kinds = [
                f"`{ct}` {_type(media['schema'])}" if media.get("schema") else f"`{ct}`"
                for ct, media in content.items()
            ]
            described = _inline(response.get("description", ""))
            out.append(f"- **{status}**: {described}" + (f" ({', '.join(kinds)})" if kinds else ""))
        out.append("")
    return out


def _schema(name: str, schema: dict[str, Any]) -> list[str]:
    out = [f"### {name} {{#{_anchor('schema', name)}}}", ""]
    if schema.get("description"):
        out += [schema["description"].strip(), ""]
    properties = schema.get("properties", {})
    if properties:
        required = set(schema.get("required", []))
        out += ["| name | type | required | description |", "|---|---|---|---|"]
        for prop, sub in properties.items():
            description = sub.get("description", "")
            if "default" in sub:
                default = json.dumps(sub["default"])
                description = f"{description} (default `{default}`)".strip()
            out.append(
                _row(f"`{prop}`", _type(sub), "yes" if prop in required else "no", description)
            )
        out.append("")
    elif "properties" not in schema:
        out += [f"Type: {_type(schema)}", ""]
    return out


def _type(schema: dict[str, Any]) -> str:
    """A short, readable type: `$ref`s link to their schema, unions read `A or B`."""
    if not schema:
        return "any"
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{_anchor('schema', name)})"
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return " or ".join(dict.fromkeys(_type(s) for s in schema[key]))
    if "allOf" in schema:
        return " and ".join(_type(s) for s in schema["allOf"])
    if "const" in schema:
        return f"`{json.dumps(schema['const'])}`"
    if "enum" in schema:
        return "one of " + ", ".join(f"`{json.dumps(v)}`" for v in schema["enum"])
    kind = schema.get("type")
    if isinstance(kind, list):
        return " or ".join(_type({**schema, "type": k}) for k in kind)
    if kind == "array":
        return f"array of {_type(schema.get('items', {}))}"
    if kind == "object":
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict) and extra:
            return f"object of {_type(extra)}"
        return "object"
    if kind is None:
        return "any"
    if "format" in schema:
        return f"{kind} ({schema['format']})"
    return str(kind)


def _anchor(prefix: str, name: str) -> str:
    return f"{prefix}-" + re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-")


_CODE = re.compile(r"(`+)(.+?)\1", re.S)


def _inline(text: str) -> str:
    """One line of text: paragraphs joined by <br>, wrapped lines by a space."""
    paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", str(text).strip())]
    return "<br>".join(p for p in paragraphs if p)


def _cell(text: str) -> str:
    """A table cell: one line, `|` escaped outside code spans (the table parser skips those)."""
    line = _inline(text)
    parts, last = [], 0
    for match in _CODE.finditer(line):
        parts.append(line[last : match.start()].replace("|", "\\|"))
        parts.append(match.group(0))
        last = match.end()
    parts.append(line[last:].replace("|", "\\|"))
    return "".join(parts)


def _row(*cells: str) -> str:
    return "| " + " | ".join(_cell(c) for c in cells) + " |"
