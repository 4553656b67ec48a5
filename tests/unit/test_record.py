"""mailtool.record: the dataclass subset the hot paths use instead of ``dataclasses``."""

from __future__ import annotations

import subprocess
import sys
from typing import ClassVar

import pytest

from mailtool.record import FrozenInstanceError, as_dict, field, field_names, record, replace


@record
class Plain:
    name: str
    count: int = 0
    tags: list[str] = field(default_factory=list)
    kind: ClassVar[str] = "plain"


@record(frozen=True, slots=True)
class Point:
    x: int
    y: int = 2


@record(frozen=True)
class Base:
    a: int


@record(frozen=True)
class Child(Base):
    b: str = "b"


@record(eq=False)
class Identity:
    value: int


@record(frozen=True)
class Tagged:
    key: str
    notes: list[str] = field(default_factory=list, compare=False, repr=False)


def test_init_defaults_and_factories() -> None:
    one, two = Plain("a"), Plain("b", 3)
    assert (one.name, one.count, one.tags) == ("a", 0, [])
    assert two.count == 3
    one.tags.append("x")
    assert two.tags == [] and Plain("c").tags == []  # a fresh list per instance
    assert Plain.kind == "plain" and field_names(Plain) == ("name", "count", "tags")
    assert Plain.count == 0  # plain defaults stay class attributes, as with dataclasses
    with pytest.raises(TypeError):
        Plain()  # type: ignore[call-arg]


def test_repr_eq_hash() -> None:
    assert repr(Plain("a", 1)) == "Plain(name='a', count=1, tags=[])"
    assert Plain("a") == Plain("a") and Plain("a") != Plain("b")
    assert Plain("a") != ("a", 0, [])  # type: ignore[comparison-overlap]
    with pytest.raises(TypeError):
        hash(Plain("a"))  # mutable and comparable: unhashable, as with dataclasses
    assert hash(Point(1)) == hash(Point(1)) and {Point(1), Point(1, 2)} == {Point(1)}
    assert Identity(1) != Identity(1)  # eq=False keeps identity comparison


def test_fields_left_out_of_compare_and_repr() -> None:
    assert Tagged("k", ["a"]) == Tagged("k", ["b"]) and Tagged("k") != Tagged("j")
    assert hash(Tagged("k", ["a"])) == hash(Tagged("k"))
    assert repr(Tagged("k", ["secret"])) == "Tagged(key='k')"


def test_frozen_and_slots() -> None:
    point = Point(1)
    with pytest.raises(FrozenInstanceError):
        point.x = 5  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del point.y
    assert not hasattr(point, "__dict__")
    assert Point.__slots__ == ("x", "y")
    assert (point.x, point.y) == (1, 2)


def test_inheritance_replace_as_dict() -> None:
    child = Child(1)
    assert field_names(child) == ("a", "b")
    assert replace(child, b="c") == Child(1, "c") and child.b == "b"
    assert as_dict(Child(4, "z")) == {"a": 4, "b": "z"}
    assert Child(1) != Base(1)


def test_required_after_default_is_refused() -> None:
    with pytest.raises(TypeError):
        @record
        class Bad:
            a: int = 1
            b: int  # type: ignore[misc]


def test_importing_records_skips_dataclasses_and_typing() -> None:
    code = ("import sys, mailtool.record; "
            "print(sorted({'dataclasses', 'typing', 'inspect'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=30)
    assert out.stdout.strip() == "[]"
