"""docs/configuration.md is the generator's output, and names every key the loader accepts.

The second half checks the generator against pydantic's own JSON schema of the model (an
independent walk): every key of every model has a row in its model's section, with the
schema's default and bounds.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from commands.cli import app
from inferplane.config import InferplaneConfig
from inferplane.config.reference import render_reference

DOC = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"
SCHEMA = InferplaneConfig.model_json_schema()
# Written in the YAML as one string (see the "schedule-window" value type), not a section.
STRING_MODELS = {"WindowSpec"}
BOUNDS = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<"}


@pytest.fixture(scope="module")
def reference() -> str:
    return render_reference()


def test_committed_reference_is_the_generated_one(reference: str) -> None:
    assert DOC.read_text(encoding="utf-8") == reference, (
        "docs/configuration.md is stale: run `inferplane config reference > docs/configuration.md`"
    )


def test_cli_prints_the_reference(reference: str) -> None:
    result = CliRunner().invoke(app, ["config", "reference"])
    assert result.exit_code == 0, result.output
    assert result.stdout == reference


def section_of(reference: str, model: str) -> str:
    """The text of one model's section: from its anchor to the next one."""
    start = reference.index(f'<a id="{model.lower()}"></a>')
    end = reference.find('<a id="', start + 1)
    return reference[start : end if end > 0 else None]


def row_of(section: str, key: str) -> str:
    rows = [line for line in section.splitlines() if line.startswith(f"| `{key}` |")]
    assert len(rows) == 1, f"key {key!r}: {len(rows)} rows"
    return rows[0]


def schema_models() -> list[tuple[str, dict[str, Any]]]:
    models = [(name, spec) for name, spec in SCHEMA["$defs"].items() if "properties" in spec]
    return [("InferplaneConfig", SCHEMA), *[(n, s) for n, s in models if n not in STRING_MODELS]]


def variants(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """The property's schema and its non-null alternatives (``X | None`` is anyOf)."""
    return [spec, *[s for s in spec.get("anyOf", []) if s.get("type") != "null"]]


@pytest.mark.parametrize(("model", "spec"), schema_models(), ids=[name for name, _ in schema_models()])
def test_every_key_has_its_row_default_and_bounds(reference: str, model: str, spec: dict[str, Any]) -> None:
    section = section_of(reference, model)
    for key, prop in spec["properties"].items():
        row = row_of(section, key)
        if key in spec.get("required", []):
            assert "| required |" in row, row
        elif "default" in prop and not isinstance(prop["default"], dict):
            assert f"`{json.dumps(prop['default'])}`" in row, row
        for variant in variants(prop):
            for keyword, sign in BOUNDS.items():
                if keyword in variant:
                    assert f"{sign} {variant[keyword]}" in row, (key, keyword, row)
            # A tuple's length is its type ([integer, integer]), not a constraint.
            if ("minItems" in variant and "prefixItems" not in variant) or "minLength" in variant:
                assert f"length >= {variant.get('minItems', variant.get('minLength'))}" in row, row
        if prop.get("description"):
            assert prop["description"].replace("|", "\\|") in row, row


def test_every_model_is_in_the_contents(reference: str) -> None:
    contents = reference.split("## Sections", 1)[1].split('<a id="', 1)[0]
    linked = set(re.findall(r"\]\(#(\w+)\)", contents))
    assert linked == {name.lower() for name, _ in schema_models()}


def test_value_types_are_named_in_the_reference(reference: str) -> None:
    endpoint = section_of(reference, "Endpoint")
    assert "`slug`" in row_of(endpoint, "name")
    window = section_of(reference, "ScheduleWindow")
    assert "`schedule-window`" in row_of(window, "when")
    assert "| `schedule-window` |" in reference.split("## Sections")[0]
