#!/usr/bin/env python3
"""Holds docs/openapi.yaml to what integration-api serves.

Usage (the contract test, tests/tests/openapi.rs, runs it with the project venv):

    .venv/bin/python infra/scripts/check_openapi.py docs/openapi.yaml observed.json

`observed.json` is written by the test: the routes the function serves (its
route table) and every exchange the test made with the real handler:
`{"routes": [{"method", "path"}], "exchanges": [{"method", "template", "path",
"status", "contentType", "body"}]}` (`body` is parsed JSON, text, or null).

Checks:
1. the document is OpenAPI 3.1 and every schema in it is a valid JSON Schema
   (2020-12, OpenAPI's dialect);
2. the document's operations are exactly the function's routes;
3. every exchange is documented (path, method, status), with the documented
   content type, and its body validates against the documented schema;
4. every documented status of every operation was seen at least once
   (`default`, the server errors, excepted).

Exits 0 when everything holds, 1 with one line per failure otherwise.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import SchemaError

METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}


def schemas_in(node: Any, where: str):
    """Every schema object of the document, with where it is."""
    if isinstance(node, dict):
        for key, value in node.items():
            here = f"{where}/{key}"
            if key == "schema" and isinstance(value, dict):
                yield here, value
            elif key == "schemas" and where.endswith("/components") and isinstance(value, dict):
                for name, schema in value.items():
                    yield f"{here}/{name}", schema
            else:
                yield from schemas_in(value, here)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from schemas_in(value, f"{where}/{i}")


def resolve(doc: dict[str, Any], node: Any) -> Any:
    """Follows a local `$ref` (components) until a non-reference."""
    while isinstance(node, dict) and "$ref" in node and len(node) == 1:
        ref = node["$ref"]
        if not ref.startswith("#/"):
            raise ValueError(f"non-local $ref {ref}")
        target: Any = doc
        for part in ref[2:].split("/"):
            target = target[part]
        node = target
    return node


def validator(doc: dict[str, Any], schema: dict[str, Any]) -> Draft202012Validator:
    # The document's components travel with the schema, so that its
    # "#/components/schemas/…" references resolve from the root.
    rooted = dict(schema)
    rooted["components"] = doc.get("components", {})
    return Draft202012Validator(rooted, format_checker=FormatChecker())


def main() -> int:
    doc_path, observed_path = Path(sys.argv[1]), Path(sys.argv[2])
    doc = yaml.safe_load(doc_path.read_text())
    observed = json.loads(observed_path.read_text())
    failures: list[str] = []

    # 1. The document itself.
    if not str(doc.get("openapi", "")).startswith("3.1."):
        failures.append(f"openapi is {doc.get('openapi')!r}, expected 3.1.x")
    for where, schema in schemas_in(doc, "#"):
        try:
            Draft202012Validator.check_schema(resolve(doc, schema))
        except SchemaError as e:
            failures.append(f"{where}: invalid schema: {e.message}")

    # 2. Operations = routes.
    documented = {
        (method.upper(), path)
        for path, item in doc.get("paths", {}).items()
        for method in item
        if method in METHODS
    }
    served = {(r["method"], r["path"]) for r in observed["routes"]}
    for method, path in sorted(served - documented):
        failures.append(f"{method} {path}: served by integration-api but not in {doc_path.name}")
    for method, path in sorted(documented - served):
        failures.append(f"{method} {path}: in {doc_path.name} but not served by integration-api")

    # 3. Every exchange as documented.
    seen: set[tuple[str, str, str]] = set()
    for x in observed["exchanges"]:
        method, template, status = x["method"], x["template"], str(x["status"])
        where = f"{method} {x['path']} -> {status}"
        operation = doc.get("paths", {}).get(template, {}).get(method.lower())
        if operation is None:
            failures.append(f"{where}: no operation {method} {template} in the document")
            continue
        responses = operation.get("responses", {})
        if status in responses:
            seen.add((method, template, status))
            response = resolve(doc, responses[status])
        elif "default" in responses and int(status) >= 500:
            response = resolve(doc, responses["default"])
        else:
            failures.append(f"{where}: status {status} is not documented")
            continue
        content = response.get("content")
        if not content:
            if x["body"] not in (None, ""):
                failures.append(f"{where}: documented without a body, answered {str(x['body'])[:80]!r}")
            continue
        media = (x.get("contentType") or "").split(";")[0].strip()
        if media not in content:
            failures.append(f"{where}: content type {media!r} not in {sorted(content)}")
            continue
        schema = content[media].get("schema")
        if schema is None:
            continue
        errors = sorted(validator(doc, schema).iter_errors(x["body"]), key=lambda e: list(e.absolute_path))
        for e in errors[:5]:
            path = "/".join(str(p) for p in e.absolute_path) or "(body)"
            failures.append(f"{where}: {path}: {e.message[:200]}")

    # 4. Every documented status seen.
    for path, item in doc.get("paths", {}).items():
        for method, operation in item.items():
            if method not in METHODS:
                continue
            for status in operation.get("responses", {}):
                if status != "default" and (method.upper(), path, status) not in seen:
                    failures.append(f"{method.upper()} {path}: documented status {status} never produced by the test")

    if failures:
        print(f"FAIL {doc_path.name} ({len(failures)}):")
        for f in failures:
            print(f"  {f}")
        return 1
    print(f"ok   {doc_path.name}: {len(documented)} operations = the routes served; "
          f"{len(observed['exchanges'])} exchanges validated; every documented status produced")
    return 0


if __name__ == "__main__":
    sys.exit(main())
