"""Strict, typed config sections built from plain mappings (YAML or JSON).

Each package describes its section of an experiment as frozen dataclasses and calls
:func:`parse` on it: unknown keys, wrong types and values outside a ``Literal`` raise a
:class:`ConfigError` that names the dotted key and the allowed keys or values.
``to_dict`` is the inverse, so a parsed config round-trips exactly (diffusers' ConfigMixin
idea, without the metaclass).

Plug-ins (strategies, evaluators, profiler backends) share one idiom for their options: a
registered entry declares a frozen ``Options`` dataclass as a class attribute, and the
section that names it (a :class:`PluginSection`) carries ``options: {...}`` parsed by that
dataclass, beside the fields every plug-in of the kind shares.
"""
from __future__ import annotations

import dataclasses
import importlib
import types
import typing
from pathlib import Path
from typing import Any, ClassVar, Literal, Mapping, TypeVar, Union

import yaml

from core.errors import ConfigError, one_line

T = TypeVar("T")


def load_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({one_line(exc)})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: an experiment config must be a mapping of sections")
    return data


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) < 60 else text[:57] + "..."


def _parse_value(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _parse_value(arg, value, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{where}: invalid value {_describe(value)}")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{where}: {_describe(value)} is not allowed; allowed: {', '.join(map(str, args))}")
        return value
    if dataclasses.is_dataclass(tp):
        return parse(tp, value, where)
    if origin in (list, tuple) or tp in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {_describe(value)}")
        item = args[0] if args else Any
        return tuple(_parse_value(item, v, f"{where}[{i}]") for i, v in enumerate(value))
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {_describe(value)}")
        kt, vt = args if args else (Any, Any)
        return {str(k): _parse_value(vt, v, f"{where}.{k}") for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {_describe(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {_describe(value)}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {_describe(value)}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {_describe(value)}")
        return value
    raise TypeError(f"unsupported config type {tp!r} at {where}")


def _key(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def parse(cls: type[T], data: Any, where: str) -> T:
    """Build dataclass ``cls`` from ``data``; ``where`` is the dotted key for messages."""
    if data is None:
        data = {}
    if isinstance(data, cls):
        return data
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {_describe(data)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    plugged = isinstance(cls, type) and issubclass(cls, PluginSection)
    unknown = [k for k in data if k not in fields]
    if unknown:
        moved = cls._moved(unknown[0], data, where) if plugged else None
        raise ConfigError(moved or f"{_key(where, unknown[0])}: unknown key; allowed: {', '.join(fields) or 'none'}")
    kwargs = {}
    for name, field in fields.items():
        key = _key(where, name)
        if plugged and name == "options":
            continue
        if name in data:
            kwargs[name] = _parse_value(hints[name], data[name], key)
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{key}: required key is missing")
    if plugged:  # the options are the named plug-in's, parsed where they stand
        plugin = kwargs.get(cls.plugin_key, fields[cls.plugin_key].default)
        kwargs["options"] = parse(cls.options_class(plugin, where), data.get("options"), _key(where, "options"))
    try:
        obj = cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return obj


@dataclasses.dataclass(frozen=True)
class NoOptions:
    """The options of a plug-in that takes none."""


class PluginSection:
    """Mixin of a frozen config section that names a registered plug-in and carries its options.

    The section sets ``registry`` ("module:ATTRIBUTE" of a :class:`core.registry.Registry`,
    imported when first needed), ``plugin_key`` (the field that names the entry) and
    ``section`` (its dotted key, for messages when built in code), and has a field
    ``options: Any = None`` (after the plug-in key, by convention); the fields every entry
    shares stay beside it. Each registered entry declares its frozen ``Options`` dataclass
    (none: :class:`NoOptions`) and may define ``check_config(section)`` to check its options
    against the shared fields (raise ``ValueError``). :func:`parse` reads ``options`` with the
    entry's dataclass at ``<section>.options``; in code, ``options`` may be None (the
    defaults), a mapping, or the entry's own ``Options``. A key that moved into a plug-in's
    options is refused with where it now goes. A new entry needs no edit here or in the section.
    """

    registry: ClassVar[str]
    plugin_key: ClassVar[str] = "name"
    section: ClassVar[str] = ""
    # former sub-sections of the section that became a plug-in's options: old key -> plug-in
    formerly: ClassVar[dict[str, str]] = {}

    @classmethod
    def plugins(cls):
        module, attribute = cls.registry.split(":")
        return getattr(importlib.import_module(module), attribute)

    @classmethod
    def options_class(cls, name: str, where: str | None = None) -> type:
        """The ``Options`` of entry ``name`` (an unknown name: a ConfigError at ``where``)."""
        registry = cls.plugins()
        if name not in registry:
            where = cls.section if where is None else where
            raise ConfigError(f"{_key(where, cls.plugin_key)}: unknown {registry.kind} {_describe(name)}; "
                              f"allowed: {', '.join(registry.names())}")
        return getattr(registry.get(name), "Options", NoOptions)

    @classmethod
    def _moved(cls, key: str, data: Mapping, where: str) -> str | None:
        """Where a key the section no longer has now goes (None: it never belonged here)."""
        registry = cls.plugins()
        chosen = data.get(cls.plugin_key, getattr(cls, cls.plugin_key, None))
        options = _key(where, "options")
        named = f"{_key(where, cls.plugin_key)}: "
        owners = [n for n, entry in registry.items()
                  if key in {f.name for f in dataclasses.fields(getattr(entry, "Options", NoOptions))}]
        if chosen in owners:
            return f"{_key(where, key)}: now an option of {registry.kind} {chosen}; write it as {options}.{key}"
        if key in registry or key in cls.formerly:  # a former sub-section of one plug-in's options
            entry = cls.formerly.get(key, key)
            return (f"{_key(where, key)}: the options of {registry.kind} {entry} now go under {options} "
                    f"(with {named}{entry})")
        if owners:
            return (f"{_key(where, key)}: an option of {registry.kind} {', '.join(owners)}, not of {chosen}; "
                    f"write it as {options}.{key} with {named}{owners[0]}")
        return None

    def plugin(self):
        """The registered entry this section names."""
        return self.plugins().get(getattr(self, self.plugin_key))

    def __post_init__(self):
        name = getattr(self, self.plugin_key)
        options_class = self.options_class(name)
        options = self.options
        if options is None or isinstance(options, Mapping):
            options = parse(options_class, options, _key(self.section, "options"))
        elif type(options) is not options_class:
            raise ConfigError(f"{_key(self.section, 'options')}: {type(options).__name__} given for "
                              f"{self.plugins().kind} {name}, which takes {options_class.__name__}")
        object.__setattr__(self, "options", options)
        check = getattr(self.plugin(), "check_config", None)
        if check is not None:
            check(self)

    def with_options(self, **changes):
        """This section with some of its plug-in's options changed (checked like the YAML)."""
        options = parse(type(self.options), {**to_dict(self.options), **changes}, _key(self.section, "options"))
        return dataclasses.replace(self, options=options)

    def switch(self, name: str, **changes):
        """This section naming plug-in ``name``: the options it shares by name with the current
        plug-in carry over, then ``changes`` apply."""
        target = {f.name for f in dataclasses.fields(self.options_class(name))}
        kept = {k: v for k, v in to_dict(self.options).items() if k in target}
        return dataclasses.replace(self, **{self.plugin_key: name, "options": {**kept, **changes}})


def to_dict(obj: Any) -> Any:
    """Plain-data form of a parsed config (lists for tuples), the inverse of :func:`parse`."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj) if f.init}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj

