"""The configuration reference (``docs/configuration.md``), generated from the config models.

Use::

    from inferplane.config.reference import render_reference
    text = render_reference()          # Markdown; `inferplane config reference` prints it

Every model reachable from :class:`~inferplane.config.InferplaneConfig` gets one section
(in the order a reader meets it in the file) with one row per field: its type, default,
constraints and description, all read from ``model_fields``. Nothing here is written by
hand, so the reference cannot drift from what the loader accepts; a test compares the
committed file with this output.
"""

from __future__ import annotations

import json
import re
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import annotated_types as at
from pydantic import AfterValidator, BaseModel, BeforeValidator
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from .autoscaling import WindowSpec
from .fields import AzureResourceId, AzureScope, EnvVarName, HttpUrl, Name, Slug, StrictModel, SubscriptionId
from .model import InferplaneConfig

__all__ = ["VALUE_TYPES", "Section", "render_reference", "sections"]

# The constrained string types of config/fields.py, by the validator that checks them:
# (name shown in the type column, what it accepts).
VALUE_TYPES: dict[Any, tuple[str, str]] = {
    typing.get_args(alias)[1].func: (name, meaning)
    for alias, name, meaning in (
        (Slug, "slug", "lowercase letters, digits and '-', 1-63 characters, starting and ending alnum"),
        (Name, "name", "lowercase letters, digits, '-' and '_', 1-63 characters"),
        (HttpUrl, "http-url", "an http:// or https:// URL with a host and no password in it"),
        (EnvVarName, "env-var", "the NAME of an environment variable (the secret stays in the environment)"),
        (SubscriptionId, "subscription-id", "an Azure subscription GUID"),
        (AzureResourceId, "azure-resource-id", "/subscriptions/<id>/resourceGroups/<rg>/providers/..."),
        (
            AzureScope,
            "azure-scope",
            "/subscriptions/<id>[/resourceGroups/<rg>] or /providers/Microsoft.Billing/billingAccounts/<id>",
        ),
    )
}
# Models the YAML writes as one string, parsed by a before-validator: never a section.
_STRING_MODELS = {WindowSpec: "schedule-window"}
_SCALARS = {str: "string", int: "integer", float: "number", bool: "boolean", Path: "path"}
_BOUNDS = ((at.Gt, "gt", ">"), (at.Ge, "ge", ">="), (at.Lt, "lt", "<"), (at.Le, "le", "<="))

_HEADER = """\
# Configuration reference

<!-- Generated from the models in inferplane/config/ by `inferplane config reference`;
     do not edit by hand: regenerate with
     inferplane config reference > docs/configuration.md -->

Every key `inferplane.yaml` accepts, section by section. Unknown keys are errors at
every level; `inferplane config check FILE` reports every problem with its line, and
`inferplane config example` prints an annotated example. Secrets never go in the file:
a key ending in `_env` names an environment variable that holds the secret, one ending
in `_file` a file that holds it. Durations are seconds and utilizations 0..1 unless a
key's name says otherwise.
"""


@dataclass(frozen=True)
class Section:
    """One model of the configuration and the YAML path where a reader meets it."""

    model: type[BaseModel]
    path: str
    kind: str | None  # the discriminating ``kind`` value, when the model has one


def render_reference() -> str:
    """The whole reference as Markdown, ending with one newline."""
    found = list(sections())
    parts = [_HEADER, _value_types(), _contents(found)]
    parts += [_section(section) for section in found]
    return "\n".join(parts).rstrip("\n") + "\n"


def sections(root: type[BaseModel] = InferplaneConfig) -> Iterator[Section]:
    """Every model reachable from ``root``, depth first in field order, each once."""
    seen: set[type[BaseModel]] = set()

    def walk(model: type[BaseModel], path: str) -> Iterator[Section]:
        if model in seen:
            return
        seen.add(model)
        yield Section(model, path, _kind(model))
        for name, field in model.model_fields.items():
            suffix = "[]" if _is_list(field.annotation) else ""
            for child in _models_in(field.annotation):
                yield from walk(child, f"{path}.{name}{suffix}".lstrip("."))

    yield from walk(root, "")


def _value_types() -> str:
    rows = [f"| `{name}` | {_cell(meaning)} |" for name, meaning in VALUE_TYPES.values()]
    rows.append(
        "| `schedule-window` | `<days> <HH:MM>-<HH:MM> <IANA time zone>`, e.g. "
        "`Mon-Fri 07:30-20:30 Europe/Berlin`; an end before the start runs past midnight |"
    )
    return "## Value types\n\n| type | accepts |\n| --- | --- |\n" + "\n".join(rows) + "\n"


def _contents(found: list[Section]) -> str:
    lines = ["## Sections", ""]
    for section in found:
        depth = section.path.count(".") + (1 if section.path else 0)
        lines.append(f"{'  ' * depth}- [{_title(section)}](#{_anchor(section.model)})")
    return "\n".join(lines) + "\n"


def _section(section: Section) -> str:
    model = section.model
    lines = [f'<a id="{_anchor(model)}"></a>', f"## {_title(section)}", ""]
    lines += [f"{text}\n" for text in _docstrings(model)]
    lines += ["| key | type | default | constraints | description |", "| --- | --- | --- | --- | --- |"]
    for name, field in model.model_fields.items():
        checks = [*_constraints(field.metadata), *_field_rules(model, name)]
        cells = (f"`{name}`", _field_type(field), _default(field), "; ".join(checks), _description(field))
        lines.append("| " + " | ".join(_cell(cell or "") for cell in cells) + " |")
    rules = _model_rules(model)
    if rules:
        where = f"`{model.__module__.replace('.', '/')}.py`"
        note = (
            f"Validators also run on load: {', '.join(rules)} (in {where}; each message says what it needs)."
        )
        lines += ["", note]
    return "\n".join(lines) + "\n"


def _field_type(field: FieldInfo) -> str:
    named = _validated_name(field.metadata)
    text = f"`{named}`" if named else _type(field.annotation)
    return f"{text}, chosen by `{field.discriminator}`" if isinstance(field.discriminator, str) else text


def _description(field: FieldInfo) -> str | None:
    # Without a description of its own, a field holding one model is what that model is.
    if field.description:
        return field.description
    models = list(_models_in(field.annotation))
    docs = _docstrings(models[0]) if len(models) == 1 else []
    return docs[0].split(". ")[0].rstrip(".") + "." if docs else None


def _title(section: Section) -> str:
    where = f"`{section.path}`" if section.path else "top level"
    kind = f" — kind `{section.kind}`" if section.kind else ""
    return f"{where}{kind} ({section.model.__name__})"


def _anchor(model: type[BaseModel]) -> str:
    return model.__name__.lower()


def _kind(model: type[BaseModel]) -> str | None:
    field = model.model_fields.get("kind")
    if field is None or typing.get_origin(field.annotation) is not Literal:
        return None
    values = typing.get_args(field.annotation)
    return str(values[0]) if len(values) == 1 else None


def _docstrings(model: type[BaseModel]) -> list[str]:
    # A model's own docstring first, then its bases' (a base may say what its fields share).
    texts = []
    for cls in model.__mro__:
        if cls in (StrictModel, BaseModel) or not issubclass(cls, BaseModel):
            break
        doc = cls.__dict__.get("__doc__")
        if doc:
            texts.append(_markdown(doc))
    return texts


def _markdown(docstring: str) -> str:
    # Docstrings are reStructuredText: ``code`` and :func:`a.b.name` become Markdown.
    text = " ".join(docstring.split())
    text = re.sub(r":\w+:`~?(?:[\w.]+\.)?(\w+)`", r"`\1`", text)
    return text.replace("``", "`")


def _is_list(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (list, tuple, frozenset, set)


def _models_in(annotation: Any) -> Iterator[type[BaseModel]]:
    """The models a field can hold (through unions, lists, Annotated), never string models."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        if annotation not in _STRING_MODELS:
            yield annotation
        return
    for arg in typing.get_args(annotation):
        yield from _models_in(arg)


def _type(annotation: Any) -> str:
    """A reader's name for a type: ``list of slug``, ``number or null``, a link to a model."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return _annotated(args[0], args[1:])
    if origin is Literal and len(args) == 1:
        return f"`{json.dumps(args[0])}`"
    if origin is Literal:
        return "one of " + ", ".join(f"`{json.dumps(value)}`" for value in args)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type(arg) for arg in args)
    if origin in (list, set, frozenset):
        return f"list of {_type(args[0])}"
    if origin is tuple:
        return "[" + ", ".join(_type(arg) for arg in args) + "]"
    if origin is dict:
        return f"map of {_type(args[0])} to {_type(args[1])}"
    if annotation is type(None):
        return "null"
    if annotation in _STRING_MODELS:
        return f"`{_STRING_MODELS[annotation]}`"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return f"[{annotation.__name__}](#{_anchor(annotation)})"
    return _SCALARS.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _annotated(base: Any, metadata: tuple[Any, ...]) -> str:
    # Inside lists and tuples constraints ride on Annotated; a FieldInfo carries its own.
    flat: list[Any] = []
    for item in metadata:
        flat += item.metadata if isinstance(item, FieldInfo) else [item]
        if isinstance(item, FieldInfo) and item.description:
            flat.append(_Note(item.description))
    named = _validated_name(flat)
    text = f"`{named}`" if named else _type(base)
    for item in metadata:
        if isinstance(item, FieldInfo) and isinstance(item.discriminator, str):
            return f"{text}, chosen by `{item.discriminator}`"
    checks = _constraints(flat)
    return f"{text} ({', '.join(checks)})" if checks else text


@dataclass(frozen=True)
class _Note:
    text: str


def _validated_name(metadata: list[Any]) -> str | None:
    for item in metadata:
        if isinstance(item, AfterValidator | BeforeValidator) and item.func in VALUE_TYPES:
            return VALUE_TYPES[item.func][0]
    return None


def _constraints(metadata: list[Any]) -> list[str]:
    """Field constraints in words: ``> 0``, ``at least 1 item``, ``matches `regex```."""
    checks: list[str] = []
    for item in metadata:
        for kind, attribute, sign in _BOUNDS:
            if isinstance(item, kind):
                checks.append(f"{sign} {getattr(item, attribute)}")
        if isinstance(item, at.MinLen):
            checks.append(f"length >= {item.min_length}")
        elif isinstance(item, at.MaxLen):
            checks.append(f"length <= {item.max_length}")
        elif isinstance(item, _Note):
            checks.append(item.text)
        elif getattr(item, "pattern", None):
            checks.append(f"matches `{item.pattern}`")
    return checks


def _field_rules(model: type[BaseModel], name: str) -> list[str]:
    decorators = model.__pydantic_decorators__.field_validators.values()
    return [_rule_text(d.func) for d in decorators if name in d.info.fields]


def _model_rules(model: type[BaseModel]) -> list[str]:
    return [_rule_text(d.func) for d in model.__pydantic_decorators__.model_validators.values()]


def _rule_text(func: Any) -> str:
    # A validator's docstring when it has one, else its name (its message is in the code).
    func = getattr(func, "__func__", func)
    doc = (func.__doc__ or "").strip()
    return _markdown(doc.split("\n\n")[0]) if doc else f"`{func.__name__}`"


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        value = field.default_factory()  # type: ignore[call-arg]
    elif field.default is PydanticUndefined:
        return "required"
    else:
        value = field.default
    if isinstance(value, BaseModel):
        return "each key's default"
    return f"`{json.dumps(value, default=str)}`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
