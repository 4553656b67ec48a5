"""Value converters of our own option types, without Click: the Click types in
``cli/commands/`` and the fast path (``fastparse.py``) both call these, so each rule
lives once. A converter takes the string from the command line and returns the value, or
raises ``ValueError`` (the Click type turns that into its usage error; the fast path
hands the whole command line to Click, which then reports it).
"""

from __future__ import annotations

_SIZE_FACTORS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def parse_size(value: str) -> int:
    """``5000``, ``64k``, ``10M``, ``1G`` (powers of 1024; a trailing ``b``/``B`` allowed).

    Raises:
        ValueError: not a size like that.
    """
    import re

    m = re.match(r"^\s*(\d+(?:\.\d+)?)\s*([kmgKMG]?)[bB]?\s*$", value)
    if not m:
        raise ValueError(f"{value!r} is not a size like 5000, 64k or 10M")
    return int(float(m.group(1)) * _SIZE_FACTORS[m.group(2).lower()])


#: The converters the fast path may use, by the name the Click type declares
#: (``fast_converter`` on the ``ParamType`` subclass).
CONVERTERS = {"size": parse_size}
