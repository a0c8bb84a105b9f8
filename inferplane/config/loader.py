"""Reading ``inferplane.yaml``: parse, validate, and point every problem at its line.

Every problem is collected before anything is raised: YAML duplicate keys, secrets typed
into the file, field validation and the cross-section rules all land in one ConfigError.
Locations come from the composed YAML node tree, so each message says
``FILE:LINE: field.path: what was expected``.
"""

from __future__ import annotations

import difflib
import types
import typing
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from .errors import ConfigError
from .model import InferplaneConfig, Loc, cross_field_problems
from .secret import is_secret_key

__all__ = ["check_config", "example_config_text", "load_config", "parse_config"]


@dataclass(frozen=True, order=True)
class _Problem:
    line: int
    path: str
    message: str

    def render(self, filename: str) -> str:
        where = f"{filename}:{self.line}: "
        return where + (f"{self.path}: {self.message}" if self.path else self.message)


def load_config(path: str | Path) -> InferplaneConfig:
    """Read and validate a config file; raises ConfigError listing every problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            [f"{path}: no such file; start from the example: inferplane config example > inferplane.yaml"]
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError([f"{path}: cannot read the file: {error}"]) from error
    return parse_config(text, str(path))


def check_config(path: str | Path) -> list[str]:
    """Every problem with a config file, one line each; empty when it is valid."""
    try:
        load_config(path)
    except ConfigError as error:
        return error.problems
    return []


def parse_config(text: str, filename: str = "<string>") -> InferplaneConfig:
    """Validate config text; ``filename`` is what the messages name."""
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        data = loader.construct_document(root) if root is not None else None
    except yaml.MarkedYAMLError as error:
        # Raised without chaining: YAML's own message quotes the offending source line,
        # which may hold a secret.
        raise ConfigError([_yaml_problem(error).render(filename)]) from None
    finally:
        loader.dispose()
    if root is None or not isinstance(data, dict):
        found = "is empty" if root is None else f"holds a {type(data).__name__}"
        line = 1 if root is None else root.start_mark.line + 1
        raise ConfigError(
            [f"{filename}:{line}: the file {found}; expected a mapping with at least 'endpoints'"]
        )
    problems = _validate(root, data)
    if isinstance(problems, InferplaneConfig):
        return problems
    raise ConfigError([problem.render(filename) for problem in sorted(set(problems))])


def example_config_text() -> str:
    """The annotated example shipped in the package (``inferplane/example.yaml``)."""
    return resources.files("inferplane").joinpath("example.yaml").read_text(encoding="utf-8")


def _validate(root: yaml.Node, data: dict[str, Any]) -> InferplaneConfig | list[_Problem]:
    problems = list(_scan_keys(root, ()))
    flagged = {problem.path for problem in problems}
    try:
        config = InferplaneConfig.model_validate(data)
    except ValidationError as error:
        for detail in error.errors(include_url=False, include_input=False):
            if detail["type"] == "cross_field":
                continue  # reported below, each at its own location
            problem = _located(root, (*detail["loc"], *detail.get("ctx", {}).get("at", ())), _message(detail))
            if not (detail["type"] == "extra_forbidden" and problem.path in flagged):
                problems.append(problem)
    else:
        if not problems:
            return config
    problems += [_located(root, loc, message) for loc, message in cross_field_problems(data)]
    return problems


def _scan_keys(node: yaml.Node, loc: Loc) -> typing.Iterator[_Problem]:
    """Duplicate keys (YAML keeps the last one silently) and secrets typed into the file."""
    if isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            yield from _scan_keys(item, (*loc, index))
    if not isinstance(node, yaml.MappingNode):
        return
    seen: set[str] = set()
    for key, value in node.value:
        name = str(key.value)
        line = key.start_mark.line + 1
        if name in seen:
            yield _Problem(line, _path((*loc, name)), "duplicate key; YAML would silently keep only the last")
        seen.add(name)
        if is_secret_key(name):
            message = (
                "looks like a secret; secrets never go in the file: set "
                f"{name}_env to the NAME of an environment variable, or {name}_file to a file path"
            )
            yield _Problem(line, _path((*loc, name)), message)
        yield from _scan_keys(value, (*loc, name))


def _located(root: yaml.Node, loc: Loc, message: str) -> _Problem:
    """Follow a pydantic location through the YAML nodes to the line it came from."""
    node: yaml.Node | None = root
    line = root.start_mark.line + 1
    path: list[str | int] = []
    for position, part in enumerate(loc):
        child = _child(node, part)
        if child is not None:
            key_line, node = child
            line = key_line
            path.append(part)
        elif position == len(loc) - 1 or isinstance(part, int):
            # A missing field: blame the mapping that should hold it.
            node = None
            path.append(part)
        # else: a union tag pydantic adds to locations (such as 'local'); not in the file.
    return _Problem(line, _path(tuple(path)), message)


def _child(node: yaml.Node | None, part: str | int) -> tuple[int, yaml.Node] | None:
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
        item = node.value[part]
        return item.start_mark.line + 1, item
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if str(key.value) == str(part):
                return key.start_mark.line + 1, value
    return None


def _path(loc: Loc) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _message(detail: ErrorDetails) -> str:
    kind, message = detail["type"], detail["msg"]
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        return _unknown_field_message(detail["loc"])
    if kind == "union_tag_not_found":
        return f"missing {detail.get('ctx', {}).get('discriminator', 'kind')}, which says what kind this is"
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    return message


def _unknown_field_message(loc: Loc) -> str:
    allowed = sorted({name for model in _models_at(loc[:-1]) for name in model.model_fields})
    guess = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
    hint = f"did you mean '{guess[0]}'? " if guess else ""
    return f"unknown field; {hint}expected one of: {', '.join(allowed)}"


def _models_at(loc: Loc) -> list[type[BaseModel]]:
    """The model classes that could sit at a location (several inside an unresolved union)."""
    models: list[type[BaseModel]] = [InferplaneConfig]
    for part in loc:
        if isinstance(part, int):
            continue  # list items: _models_in already unwrapped the list
        holders = [model for model in models if part in model.model_fields]
        if holders:
            models = [found for model in holders for found in _models_in(model.model_fields[part].annotation)]
        else:  # a union tag: keep the member it names
            models = [model for model in models if _tag(model) == part] or models
    return models


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    origin = typing.get_origin(annotation)
    if origin is None or origin is dict:
        return []
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        args = args[:1]
    elif origin not in (list, tuple, typing.Union, types.UnionType):
        return []
    return [model for arg in args for model in _models_in(arg)]


def _tag(model: type[BaseModel]) -> str | None:
    kind = model.model_fields.get("kind")
    if kind is not None and typing.get_origin(kind.annotation) is typing.Literal:
        return str(typing.get_args(kind.annotation)[0])
    tag = getattr(model, "TAG", None)
    return tag if isinstance(tag, str) else None


def _yaml_problem(error: yaml.MarkedYAMLError) -> _Problem:
    # Only YAML's own words and marks: its str() would quote the line, which may hold a secret.
    mark = error.problem_mark or error.context_mark
    line = mark.line + 1 if mark is not None else 1
    context = error.context or ""
    if context and error.context_mark is not None and error.context_mark.line + 1 != line:
        context += f" (from line {error.context_mark.line + 1})"
    what = ", ".join(part for part in (context, error.problem) if part)
    return _Problem(line, "", f"YAML syntax error: {what}")
