"""mailtool.record's lazily compiled ``__init__``: the generic one a short process uses and
the compiled one a long run switches to behave the same."""

from __future__ import annotations

import pytest

from mailtool import record as rec
from mailtool.record import FrozenInstanceError, field, record


def _make() -> tuple[type, type]:
    @record
    class Open:
        name: str
        count: int = 2
        tags: list[str] = field(default_factory=list)

    @record(frozen=True, slots=True)
    class Shut:
        key: str
        size: int = 0

    return Open, Shut


def _exercise(open_cls: type, shut_cls: type) -> list[object]:
    seen: list[object] = []
    one = open_cls("a")
    two = open_cls("b", 3, tags=["x"])
    three = open_cls(name="c", count=4)
    seen += [(one.name, one.count, one.tags), (two.name, two.count, two.tags),
             (three.name, three.count, three.tags)]
    assert one.tags is not open_cls("d").tags  # a fresh list per instance
    shut = shut_cls("k", size=5)
    seen.append((shut.key, shut.size, repr(shut)))
    with pytest.raises(FrozenInstanceError):
        shut.size = 6
    for bad in (lambda: open_cls(), lambda: open_cls("a", 1, [], 4),
                lambda: open_cls("a", name="b"), lambda: open_cls("a", colour=1),
                lambda: shut_cls()):
        with pytest.raises(TypeError):
            bad()
    return seen


def test_generic_and_compiled_init_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rec, "COMPILE_AFTER", 10**9)
    generic = _exercise(*_make())
    monkeypatch.setattr(rec, "COMPILE_AFTER", 0)
    open_cls, shut_cls = _make()
    open_cls("warm")
    shut_cls("warm")  # the first call compiles and installs the specialised __init__
    assert "_lazy_init" not in open_cls.__init__.__code__.co_qualname
    assert "_lazy_init" not in shut_cls.__init__.__code__.co_qualname
    assert _exercise(open_cls, shut_cls) == generic


def test_init_is_compiled_only_after_many_instances() -> None:
    open_cls, _shut = _make()
    for index in range(rec.COMPILE_AFTER):
        open_cls(str(index))
    assert "_lazy_init" in open_cls.__init__.__code__.co_qualname
    open_cls("one more")
    assert "_lazy_init" not in open_cls.__init__.__code__.co_qualname
