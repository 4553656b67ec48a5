"""Records: the part of ``dataclasses`` mailtool uses, at a fraction of its start-up cost.

``import dataclasses`` costs about 25 ms on a small machine (it imports ``inspect``) and
each decorated class about 1 ms more; ``mailtool-sendmail`` builds some thirty such
classes before it sends one message and must start as fast as msmtp. ``@record`` gives
the same classes for about 50 µs each: a generated ``__init__`` (fields in order, defaults,
``field(default_factory=...)``), ``__repr__``, ``__eq__``, ``__hash__`` when frozen, and
``frozen=True`` / ``slots=True`` / ``eq=False`` as in ``dataclasses``. Fields come from the
class's own annotations after those of its record bases; ``ClassVar`` annotations are not
fields. There is no ``__post_init__``, ordering or ``kw_only``: nothing here needs them.

Type checkers see ``@record`` as a dataclass transform (PEP 681), so annotations, defaults
and frozen-ness are checked exactly as for ``@dataclass``.
"""

from __future__ import annotations

# Not ``typing.TYPE_CHECKING``: importing typing is part of what this module saves.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar

    T = TypeVar("T")


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<missing>"


_MISSING: Any = _Missing()


class _Field:
    __slots__ = ("compare", "default", "factory", "repr")

    def __init__(self, default: object, factory: Callable[[], object] | None,
                 compare: bool = True, repr: bool = True) -> None:
        self.default = default
        self.factory = factory
        self.compare = compare
        self.repr = repr


if TYPE_CHECKING:
    from typing import dataclass_transform, overload

    @overload
    def field(*, default: T, compare: bool = True, repr: bool = True) -> T: ...
    @overload
    def field(*, default_factory: Callable[[], T], compare: bool = True,
              repr: bool = True) -> T: ...
    def field(*, default: Any = ..., default_factory: Any = ..., compare: bool = True,
              repr: bool = True) -> Any:
        """A field with a default value or a factory for one; ``compare=False`` leaves it
        out of ``==`` and the hash, ``repr=False`` out of the repr."""

else:

    def dataclass_transform(**_kw):  # runtime stand-in
        return lambda func: func

    def field(*, default=_MISSING, default_factory=None, compare=True, repr=True):
        if default_factory is not None:
            return _Field(_MISSING, default_factory, compare, repr)
        return _Field(default, None, compare, repr)


class FrozenInstanceError(AttributeError):
    """An assignment to a field of a frozen record."""


@dataclass_transform(field_specifiers=(field,))
def record(
    cls: Any = None, /, *, frozen: bool = False, slots: bool = False, eq: bool = True
) -> Any:
    """Make ``cls`` a record (``@record`` or ``@record(frozen=True, slots=True)``)."""

    def wrap(target: type[T]) -> type[T]:
        return _build(target, frozen=frozen, slots=slots, eq=eq)

    return wrap if cls is None else wrap(cls)


def field_names(cls_or_obj: object) -> tuple[str, ...]:
    """The field names of a record class or instance, in ``__init__`` order."""
    names: tuple[str, ...] = cls_or_obj.__record_fields__  # type: ignore[attr-defined]
    return names


def replace(obj: T, /, **changes: object) -> T:
    """A copy of the record ``obj`` with ``changes`` applied (like ``dataclasses.replace``)."""
    values = {name: getattr(obj, name) for name in field_names(obj)}
    values.update(changes)
    return type(obj)(**values)


def as_dict(obj: object) -> dict[str, Any]:
    """The fields of ``obj`` as a dict (shallow, unlike ``dataclasses.asdict``)."""
    return {name: getattr(obj, name) for name in field_names(obj)}


def _build(cls: type[T], *, frozen: bool, slots: bool, eq: bool) -> type[T]:
    specs: dict[str, _Field | None] = {}  # name -> default spec (None: required)
    for base in reversed(cls.__mro__[1:]):
        specs.update(base.__dict__.get("__record_specs__", {}))
    own: list[str] = []
    # Not inspect.get_annotations: inspect is one of the imports this module avoids.
    for name, annotation in cls.__dict__.get("__annotations__", {}).items():  # noqa: RUF063
        text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
        if text.startswith(("ClassVar", "typing.ClassVar")):
            continue
        value = cls.__dict__.get(name, _MISSING)
        if isinstance(value, _Field):
            required = value.factory is None and value.default is _MISSING
            specs[name] = None if required else value
        elif value is _MISSING:
            specs[name] = None
        else:
            specs[name] = _Field(value, None)
        own.append(name)
    names = tuple(specs)
    seen_default = False
    for name, spec in specs.items():
        if spec is None and seen_default:
            raise TypeError(f"{cls.__name__}: field {name!r} without a default follows "
                            "one with a default")
        seen_default = seen_default or spec is not None
    built: list[type[Any]] = []  # the final class (``slots`` makes a new one), set below
    init = _lazy_init(built, cls.__qualname__, names, specs, frozen)

    attrs: dict[str, Any] = {
        "__init__": init, "__record_fields__": names, "__record_specs__": specs,
        "__record_compared__": tuple(n for n, f in specs.items() if f is None or f.compare),
        "__record_shown__": tuple(n for n, f in specs.items() if f is None or f.repr),
    }
    if "__repr__" not in cls.__dict__:
        attrs["__repr__"] = _repr
    if eq and "__eq__" not in cls.__dict__:
        attrs["__eq__"] = _eq
        if "__hash__" not in cls.__dict__:
            attrs["__hash__"] = _hash if frozen else None
    if frozen:
        attrs["__setattr__"] = _frozen_setattr
        attrs["__delattr__"] = _frozen_delattr

    if slots:
        inherited = {s for base in cls.__mro__[1:] for s in base.__dict__.get("__slots__", ())}
        namespace = {key: value for key, value in cls.__dict__.items()
                     if key not in own and key not in ("__dict__", "__weakref__")}
        namespace["__slots__"] = tuple(name for name in names if name not in inherited)
        namespace.update(attrs)
        metaclass: Any = type(cls)
        rebuilt: type[T] = metaclass(cls.__name__, cls.__bases__, namespace)
        rebuilt.__qualname__ = cls.__qualname__
        built.append(rebuilt)
        return rebuilt
    for name in own:  # class attributes hold plain defaults, as with dataclasses
        spec = specs[name]
        if spec is None or spec.factory is not None:
            if name in cls.__dict__:
                delattr(cls, name)
        else:
            setattr(cls, name, spec.default)
    for key, value in attrs.items():
        setattr(cls, key, value)
    built.append(cls)
    return cls


#: A record's ``__init__`` is compiled (``exec`` of its source, 100-250 µs here) only once
#: the class has made this many instances; until then one generic ``__init__`` does the
#: same work a little slower. A short-lived process (``mailtool-sendmail``) makes a few
#: instances of each of its thirty records and never pays a compilation; a long run
#: (``send --batch``) compiles the few records it makes by the thousand.
COMPILE_AFTER = 16


def _lazy_init(built: list[type[Any]], qualname: str, names: tuple[str, ...],
               specs: dict[str, _Field | None], frozen: bool) -> Callable[..., None]:
    set_field = object.__setattr__ if frozen else setattr
    count = 0

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        nonlocal count
        count += 1
        if count > COMPILE_AFTER and built:
            compiled = _compile_init(qualname, specs, frozen)
            built[0].__init__ = compiled
            compiled(self, *args, **kwargs)
            return
        if len(args) > len(names):
            raise TypeError(f"{qualname}.__init__() takes {len(names) + 1} positional "
                            f"arguments but {len(args) + 1} were given")
        for name, value in zip(names, args):
            if name in kwargs:
                raise TypeError(f"{qualname}.__init__() got multiple values for argument "
                                f"{name!r}")
            set_field(self, name, value)
        for name in names[len(args):]:
            if name in kwargs:
                set_field(self, name, kwargs.pop(name))
                continue
            spec = specs[name]
            if spec is None:
                raise TypeError(f"{qualname}.__init__() missing 1 required positional "
                                f"argument: {name!r}")
            set_field(self, name, spec.default if spec.factory is None else spec.factory())
        if kwargs:
            raise TypeError(f"{qualname}.__init__() got an unexpected keyword argument "
                            f"{next(iter(kwargs))!r}")

    __init__.__qualname__ = f"{qualname}.__init__"
    return __init__


def _compile_init(qualname: str, specs: dict[str, _Field | None],
                  frozen: bool) -> Callable[..., None]:
    """The specialised ``__init__``: the fields as parameters, each set in order."""
    namespace: dict[str, Any] = {"_MISSING": _MISSING, "_set": object.__setattr__}
    params, body = [], []
    for name, spec in specs.items():
        if spec is None:
            params.append(name)
            value = name
        elif spec.factory is not None:
            namespace[f"_factory_{name}"] = spec.factory
            params.append(f"{name}=_MISSING")
            value = f"_factory_{name}() if {name} is _MISSING else {name}"
        else:
            namespace[f"_default_{name}"] = spec.default
            params.append(f"{name}=_default_{name}")
            value = name
        body.append(f"_set(self, {name!r}, {value})" if frozen else f"self.{name} = {value}")
    source = f"def __init__(self, {', '.join(params)}):\n    " + "\n    ".join(body or ["pass"])
    exec(source, namespace)  # a fixed template over the class's field names
    init: Callable[..., None] = namespace["__init__"]
    init.__qualname__ = f"{qualname}.__init__"
    return init


def _values(obj: Any) -> tuple[object, ...]:
    return tuple(getattr(obj, name) for name in obj.__record_compared__)


def _repr(self: Any) -> str:
    inner = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__record_shown__)
    return f"{type(self).__qualname__}({inner})"


def _eq(self: Any, other: object) -> Any:  # bool, or NotImplemented
    if other.__class__ is not self.__class__:
        return NotImplemented
    return _values(self) == _values(other)


def _hash(self: Any) -> int:
    return hash(_values(self))


def _frozen_setattr(self: Any, name: str, value: object) -> None:
    raise FrozenInstanceError(f"cannot assign to field {name!r} of a frozen record")


def _frozen_delattr(self: Any, name: str) -> None:
    raise FrozenInstanceError(f"cannot delete field {name!r} of a frozen record")
