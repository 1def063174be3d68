"""Read a YAML config into a validated :class:`Config`, with errors that point into the file."""

from __future__ import annotations

import json
import sys
import types
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from skillswitch.config.models import Config, did_you_mean
from skillswitch.exceptions import ConfigError, ConfigIssue

__all__ = ["config_json_schema", "default_config", "load_config", "parse_config"]

Location = tuple[str | int, ...]

DEFAULT_CONFIG_RESOURCE = "default.yaml"
MAX_CONFIG_BYTES = 8 * 1024 * 1024
# A config is a few levels deep and a few hundred values (the default: 6 and 440). Far beyond any
# real one, these bounds keep a hostile document from costing the loader: PyYAML and the checks
# here recurse once per level, and aliases expand when read ("a billion laughs": nine aliases
# of nine aliases, nine levels down, are 9**9 values).
MAX_DEPTH = 100
MAX_VALUES = 250_000
# PyYAML's scanner is quadratic in open flow brackets ("[" * 5000 takes seconds): more open at
# once than this (a few times MAX_DEPTH, so that brackets in plain text never reach it) is
# refused before it is scanned.
MAX_OPEN_BRACKETS = 4 * MAX_DEPTH


def load_config(path: str | Path) -> Config:
    """Load and validate a config file. Relative paths inside resolve against its folder.

    >>> load_config("examples/config.yaml").router.top_k  # doctest: +SKIP
    3
    """
    file = Path(path)
    try:
        raw = file.read_bytes()
    except FileNotFoundError:
        raise ConfigError.single("", f"config file {str(file)!r} does not exist") from None
    except IsADirectoryError:
        raise ConfigError.single("", f"{str(file)!r} is a folder; give a YAML file") from None
    except OSError as exc:
        raise ConfigError.single("", f"cannot read {str(file)!r}: {exc.strerror}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError.single(
            "", f"{str(file)!r} is {len(raw)} bytes; a config may be at most {MAX_CONFIG_BYTES}"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError.single(
            "", f"{str(file)!r} is not UTF-8 (bad byte at offset {exc.start}); save it as UTF-8"
        ) from None
    return parse_config(text, source=str(file), base_dir=file.resolve().parent)


def default_config() -> Config:
    """The embedded default: general-purpose skills, routed with the bundled MiniLM encoder."""
    text = (
        resources.files("skillswitch.config")
        .joinpath(DEFAULT_CONFIG_RESOURCE)
        .read_text(encoding="utf-8")
    )
    return parse_config(text, source="<embedded default>", base_dir=None)


def parse_config(text: str, *, source: str | None = None, base_dir: Path | None = None) -> Config:
    """Validate config text. ``base_dir`` anchors relative paths (None leaves them as written)."""
    data, marks = _parse_yaml(text, source)
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(
            [ConfigIssue("", f"the document must be a mapping of sections, got {_kind(data)}")],
            source=source,
        )
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_issues_from(exc, data, marks, source), source=source) from None
    return _resolve_paths(config, base_dir) if base_dir is not None else config


def config_json_schema() -> dict[str, Any]:
    """The JSON Schema of the config file (draft 2020-12), as published by ``config schema``."""
    schema = Config.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "skillswitch config"
    return schema


def _resolve_paths(config: Config, base_dir: Path) -> Config:
    router = config.router
    updates: dict[str, Any] = {}
    encoder = router.encoder
    if encoder.kind == "minilm" and encoder.model is not None:
        updates["encoder"] = encoder.model_copy(update={"model": _anchor(encoder.model, base_dir)})
    classifier = router.classifier
    if classifier.kind == "trained":
        updates["classifier"] = classifier.model_copy(
            update={"artifact": _anchor(classifier.artifact, base_dir)}
        )
    if router.cache_dir is not None:
        updates["cache_dir"] = _anchor(router.cache_dir, base_dir)
    recruitment = config.recruitment
    if recruitment.profiles is not None:
        recruitment = recruitment.model_copy(
            update={"profiles": _anchor(recruitment.profiles, base_dir)}
        )
    tools = config.tools
    if any(server.cwd is not None for server in tools.servers):
        servers = [
            server
            if server.cwd is None
            else server.model_copy(update={"cwd": _anchor(server.cwd, base_dir)})
            for server in tools.servers
        ]
        tools = tools.model_copy(update={"servers": servers})
    if tools.retrieval.encoder is not None:
        retrieval = tools.retrieval.model_copy(
            update={"encoder": _anchor(tools.retrieval.encoder, base_dir)}
        )
        tools = tools.model_copy(update={"retrieval": retrieval})
    inference = config.inference
    if inference.models:
        models = [
            model.model_copy(update={"path": str(_anchor(Path(model.path), base_dir))})
            for model in inference.models
        ]
        inference = inference.model_copy(update={"models": models})
    if (
        not updates
        and recruitment is config.recruitment
        and tools is config.tools
        and inference is config.inference
    ):
        return config
    return config.model_copy(
        update={
            "router": router.model_copy(update=updates),
            "recruitment": recruitment,
            "tools": tools,
            "inference": inference,
        }
    )


def _anchor(path: Path, base_dir: Path) -> Path:
    path = path.expanduser()
    return path if path.is_absolute() else base_dir / path


# --- YAML with source positions --------------------------------------------------------------


def _parse_yaml(text: str, source: str | None) -> tuple[Any, dict[Location, str]]:
    if _open_brackets_exceed(text, MAX_OPEN_BRACKETS):
        raise ConfigError(
            [ConfigIssue("", f"the document is nested too deeply (at most {MAX_DEPTH} levels)")],
            source=source,
        )
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        if node is not None:
            _check_shape(node, source)
        data = yaml.safe_load(text)
    except RecursionError:  # PyYAML's parser recurses once per level of nesting
        raise ConfigError(
            [ConfigIssue("", f"the document is nested too deeply (at most {MAX_DEPTH} levels)")],
            source=source,
        ) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{source or '<config>'}:{mark.line + 1}:{mark.column + 1}" if mark else None
        problem = exc.problem or "invalid YAML"
        raise ConfigError(
            [ConfigIssue("", f"YAML syntax error: {problem}", location=where)], source=source
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError([ConfigIssue("", f"YAML error: {exc}")], source=source) from None
    marks: dict[Location, str] = {}
    duplicates: list[ConfigIssue] = []
    if node is not None:
        _collect_marks(node, (), marks, source or "<config>", duplicates)
    if duplicates:
        # PyYAML silently keeps the last of two equal keys; a config that says two things is
        # a mistake to report, not to guess at.
        raise ConfigError(duplicates, source=source)
    return data, marks


def _open_brackets_exceed(text: str, limit: int) -> bool:
    """Whether more than ``limit`` ``[``/``{`` are open at once somewhere, outside quotes and
    comments (a lexical over-estimate of flow nesting; cheap, and exact for flow YAML)."""
    if text.count("[") + text.count("{") <= limit:
        return False
    depth, quote, comment, previous = 0, "", False, "\n"
    for char in text:
        if comment:
            comment = char != "\n"
        elif quote:
            if char == quote:
                quote = ""
        elif char in "[{":
            depth += 1
            if depth > limit:
                return True
        elif char in "]}":
            depth = max(depth - 1, 0)
        elif char in "'\"":
            quote = char
        elif char == "#" and previous in " \t\n":
            comment = True
        previous = char
    return False


def _check_shape(root: yaml.Node, source: str | None) -> None:
    """Refuse what no config looks like and what would cost the loader: nesting deeper than
    MAX_DEPTH, a node inside itself through an alias, or aliases that expand to more than
    MAX_VALUES values. Aliases share nodes, so each is measured once (no expansion here)."""
    sizes: dict[int, int] = {}
    depths: dict[int, int] = {}
    constructor = yaml.constructor.SafeConstructor()
    stack: list[tuple[yaml.Node, Iterator[yaml.Node]]] = [(root, _children(root))]
    on_path = {id(root)}
    while stack:
        node, children = stack[-1]
        child = next(children, None)
        if child is None:
            stack.pop()
            on_path.discard(id(node))
            if isinstance(node, yaml.ScalarNode):
                _check_scalar(node, constructor, source)
            below = list(_children(node))
            sizes[id(node)] = 1 + sum(sizes[id(c)] for c in below)
            depths[id(node)] = 1 + max((depths[id(c)] for c in below), default=0)
            if sizes[id(node)] > MAX_VALUES:
                raise _shape_error(
                    node,
                    source,
                    f"the document's aliases expand to more than {MAX_VALUES} values; a config "
                    "is far smaller (write the values out, or alias less)",
                )
            continue
        if id(child) in on_path:
            raise _shape_error(
                child, source, "an alias refers to a node that contains it; a config is a tree"
            )
        depth = len(stack) + depths.get(id(child), 1)
        if depth > MAX_DEPTH:
            raise _shape_error(
                child, source, f"the document is nested too deeply (at most {MAX_DEPTH} levels)"
            )
        if id(child) not in sizes:
            on_path.add(id(child))
            stack.append((child, _children(child)))


def _check_scalar(
    node: yaml.ScalarNode, constructor: yaml.constructor.SafeConstructor, source: str | None
) -> None:
    """A scalar PyYAML reads as a number or a date must be one (``2001-13-45``, ``!!int 9x``,
    an integer longer than Python reads): PyYAML raises plain ValueErrors for those."""
    try:
        constructor.construct_object(node, deep=True)
    except yaml.YAMLError:
        return  # safe_load reports it, with its position
    except (ValueError, TypeError, AttributeError) as exc:
        kind = node.tag.rsplit(":", 1)[-1]
        detail = str(exc) if isinstance(exc, ValueError) else "not in that form"
        if "sys.set_int_max_str_digits" in detail:
            detail = f"more than {sys.get_int_max_str_digits()} digits"
        shown = node.value if len(node.value) <= 40 else node.value[:37] + "..."
        raise _shape_error(
            node, source, f"{shown!r} is not a valid YAML {kind} ({detail}); quote it if it is text"
        ) from None


def _children(node: yaml.Node) -> Iterator[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return (part for pair in node.value for part in pair)
    if isinstance(node, yaml.SequenceNode):
        return iter(node.value)
    return iter(())


def _shape_error(node: yaml.Node, source: str | None, message: str) -> ConfigError:
    mark = node.start_mark
    where = f"{source or '<config>'}:{mark.line + 1}:{mark.column + 1}"
    return ConfigError([ConfigIssue("", message, location=where)], source=source)


def _collect_marks(
    node: yaml.Node,
    loc: Location,
    out: dict[Location, str],
    source: str,
    duplicates: list[ConfigIssue],
) -> None:
    out[loc] = f"{source}:{node.start_mark.line + 1}:{node.start_mark.column + 1}"
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node)
            where = f"{source}:{key_node.start_mark.line + 1}:{key_node.start_mark.column + 1}"
            if key in seen:
                duplicates.append(
                    ConfigIssue(
                        _dotted((*loc, key)),
                        f"duplicate key {key!r}; keep one of the two",
                        location=where,
                    )
                )
            seen.add(key)
            _collect_marks(value_node, (*loc, key), out, source, duplicates)
            out[(*loc, key)] = where  # a key's own position beats its value's for messages
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _collect_marks(item, (*loc, index), out, source, duplicates)


# --- pydantic errors -> config issues ---------------------------------------------------------


@dataclass
class _Located:
    loc: Location
    """Location within the data, union/discriminator tags removed."""
    value: Any
    found: bool


def _issues_from(
    exc: ValidationError, data: Mapping[str, Any], marks: dict[Location, str], source: str | None
) -> list[ConfigIssue]:
    issues: list[ConfigIssue] = []
    grouped: dict[Location, list[dict[str, Any]]] = {}
    error: dict[str, Any]
    for details in exc.errors(include_url=False):
        error = dict(details)
        located = _locate(data, tuple(error["loc"]))
        grouped.setdefault(located.loc, []).append(error)
    for loc, errors in grouped.items():
        if loc == () and all(e["type"] == "value_error" for e in errors):
            for error in errors:
                issues.extend(_cross_reference_issues(error, marks))
            continue
        message = _message(loc, errors, data)
        issues.append(ConfigIssue(_dotted(loc), message, location=_mark_for(loc, marks)))
    return issues


def _cross_reference_issues(error: dict[str, Any], marks: dict[Location, str]) -> list[ConfigIssue]:
    text = str(error["msg"]).removeprefix("Value error, ")
    issues = []
    for line in text.splitlines():
        path, _, message = line.partition(": ")
        loc = _undotted(path)
        issues.append(ConfigIssue(path, message, location=_mark_for(loc, marks)))
    return issues


def _message(loc: Location, errors: list[dict[str, Any]], data: Mapping[str, Any]) -> str:
    first = errors[0]
    kind = first["type"]
    value = first.get("input")
    if kind == "extra_forbidden":
        key = str(loc[-1])
        allowed = _allowed_keys(loc[:-1], data)
        hint = did_you_mean(key, allowed) if allowed else ""
        return f"unknown key {key!r}{hint}"
    if kind == "missing":
        return f"required key {str(loc[-1])!r} is missing"
    if kind in {"union_tag_invalid", "union_tag_not_found"}:
        expected = first.get("ctx", {}).get("expected_tags", "")
        if kind == "union_tag_not_found":
            return f"missing 'kind'; set kind to one of {expected}"
        return f"kind {first.get('ctx', {}).get('tag')!r} is not valid; use one of {expected}"
    if len(errors) > 1:
        # A union such as `float | 'auto'`: say every accepted form at once.
        accepted = "; or ".join(str(e["msg"]).removeprefix("Input should be ") for e in errors)
        return f"{value!r} is not valid; expected {accepted}"
    message = str(first["msg"]).removeprefix("Value error, ")
    if kind == "string_pattern_mismatch" and loc and loc[-1] == "name":
        return (
            f"{value!r} is not a valid name; use lower-case letters, digits, '_' or '-', "
            "starting with a letter (e.g. 'unit_conversion')"
        )
    if kind == "string_pattern_mismatch" or (kind == "string_too_short" and not value):
        return f"{value!r} is empty or blank; give some text"
    if isinstance(value, (Mapping, list)) and kind not in {"list_type", "dict_type", "model_type"}:
        return message
    return f"{message} (got {_show(value)})"


def _allowed_keys(loc: Location, data: Mapping[str, Any]) -> list[str]:
    """Field names accepted at ``loc``, found by walking the models alongside the data."""
    annotation: Any = Config
    node: Any = data
    for part in loc:
        annotation = _step(annotation, part, node)
        node = _child(node, part)[1]
        if annotation is None:
            return []
    model = _model_of(annotation, node)
    return list(model.model_fields) if model is not None else []


def _step(annotation: Any, part: str | int, node: Any) -> Any:
    if isinstance(part, int):
        args = typing.get_args(_unwrap(annotation))
        return args[0] if args else None
    model = _model_of(annotation, node)
    if model is None or part not in model.model_fields:
        return None
    return model.model_fields[part].annotation


def _model_of(annotation: Any, node: Any) -> type[BaseModel] | None:
    annotation = _unwrap(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    candidates = [
        a for a in typing.get_args(annotation) if isinstance(a, type) and issubclass(a, BaseModel)
    ]
    kind = node.get("kind") if isinstance(node, Mapping) else None
    for candidate in candidates:
        field = candidate.model_fields.get("kind")
        if field is not None and kind in typing.get_args(field.annotation):
            return candidate
    return candidates[0] if candidates else None


def _unwrap(annotation: Any) -> Any:
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return _unwrap(args[0])
    return annotation


def _locate(data: Any, loc: Location) -> _Located:
    """Drop pydantic's union-branch tags from ``loc`` by following the real data."""
    kept: list[str | int] = []
    node = data
    for position, part in enumerate(loc):
        last = position == len(loc) - 1
        found, child = _child(node, part)
        if found and not last and _is_kind_tag(node, part):
            continue  # a tool expert's tag 'tool' is also one of its keys: the tag comes first
        if found:
            kept.append(part)
            node = child
        elif isinstance(node, Mapping) and isinstance(part, str) and last:
            kept.append(part)  # a missing or extra key is always the last part
            return _Located(tuple(kept), None, False)
        else:
            continue  # a union tag ('minilm') or branch name ('float', "literal['auto']")
    return _Located(tuple(kept), node, True)


def _is_kind_tag(node: Any, part: str | int) -> bool:
    """Discriminated unions tag a member by its ``kind`` (experts without one are 'openai')."""
    return isinstance(node, Mapping) and part == node.get("kind", "openai")


def _child(node: Any, part: str | int) -> tuple[bool, Any]:
    if isinstance(node, Mapping) and part in node:
        return True, node[part]
    if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
        return True, node[part]
    return False, None


def _dotted(loc: Location) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def _undotted(path: str) -> Location:
    loc: list[str | int] = []
    for chunk in path.replace("]", "").split("."):
        head, *indices = chunk.split("[")
        if head:
            loc.append(head)
        loc.extend(int(i) for i in indices if i.isdigit())
    return tuple(loc)


def _mark_for(loc: Location, marks: dict[Location, str]) -> str | None:
    for end in range(len(loc), -1, -1):
        if loc[:end] in marks:
            return marks[loc[:end]]
    return None


def _kind(value: object) -> str:
    return {list: "a list", str: "a string", int: "a number", float: "a number"}.get(
        type(value), type(value).__name__
    )


def _show(value: object) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
