"""The flag enums of the public API and the parsing of user-supplied flags.

Every flag argument in mmio accepts the enum member or a case-insensitive
string; this module is the one place that turns either into a C value.
"""

from __future__ import annotations

import enum

from . import _constants

PAGE_SIZE: int = _constants.PAGE_SIZE
"""The system page size in bytes (``sysconf(_SC_PAGESIZE)``)."""


class Advice(enum.IntEnum):
    """``madvise(2)`` advice values.

    Pass a member or its name as a case-insensitive string (``"sequential"``).
    Members whose value the build's headers lacked still exist (their Linux ABI
    number is used); a kernel that does not know one raises an ``OSError`` that
    names the kernel version it needs.

    Examples
    --------
    >>> import mmio
    >>> mmio.Advice.parse("sequential") is mmio.Advice.SEQUENTIAL
    True
    """

    NORMAL = _constants.ADVICE["NORMAL"]
    RANDOM = _constants.ADVICE["RANDOM"]
    SEQUENTIAL = _constants.ADVICE["SEQUENTIAL"]
    WILLNEED = _constants.ADVICE["WILLNEED"]
    DONTNEED = _constants.ADVICE["DONTNEED"]
    FREE = _constants.ADVICE["FREE"]
    REMOVE = _constants.ADVICE["REMOVE"]
    DONTFORK = _constants.ADVICE["DONTFORK"]
    DOFORK = _constants.ADVICE["DOFORK"]
    MERGEABLE = _constants.ADVICE["MERGEABLE"]
    UNMERGEABLE = _constants.ADVICE["UNMERGEABLE"]
    HUGEPAGE = _constants.ADVICE["HUGEPAGE"]
    NOHUGEPAGE = _constants.ADVICE["NOHUGEPAGE"]
    DONTDUMP = _constants.ADVICE["DONTDUMP"]
    DODUMP = _constants.ADVICE["DODUMP"]
    COLD = _constants.ADVICE["COLD"]
    PAGEOUT = _constants.ADVICE["PAGEOUT"]
    POPULATE_READ = _constants.ADVICE["POPULATE_READ"]
    POPULATE_WRITE = _constants.ADVICE["POPULATE_WRITE"]
    COLLAPSE = _constants.ADVICE["COLLAPSE"]

    @property
    def since(self) -> str:
        """The first Linux version that accepts this advice (``"2.6"`` for the old ones)."""
        return _ADVICE_SINCE.get(self.name, "2.6")

    @classmethod
    def parse(cls, value: Advice | str) -> Advice:
        """Return the member for ``value``: a member, an int, or a case-insensitive name.

        Raises
        ------
        ValueError
            ``value`` names no advice.
        TypeError
            ``value`` is neither a string nor an int.
        """
        return _parse(cls, value)


_ADVICE_SINCE = {
    "FREE": "4.5",
    "DONTDUMP": "3.4",
    "DODUMP": "3.4",
    "COLD": "5.4",
    "PAGEOUT": "5.4",
    "POPULATE_READ": "5.14",
    "POPULATE_WRITE": "5.14",
    "COLLAPSE": "6.1",
}


class Prot(enum.IntFlag):
    """``mprotect(2)`` protection bits.

    Strings are accepted too: ``"none"``, ``"r"``, ``"rw"``, ``"rwx"`` (any
    combination of the letters ``r``, ``w``, ``x``), or member names such as
    ``"read|write"``.

    Examples
    --------
    >>> import mmio
    >>> mmio.Prot.parse("rw") == mmio.Prot.READ | mmio.Prot.WRITE
    True
    """

    NONE = _constants.PROT["NONE"]
    READ = _constants.PROT["READ"]
    WRITE = _constants.PROT["WRITE"]
    EXEC = _constants.PROT["EXEC"]

    @classmethod
    def parse(cls, value: Prot | str | int) -> Prot:
        """Return the flags for ``value``: flags, an int, or a string such as ``"rw"``.

        Raises
        ------
        ValueError
            ``value`` is not a protection.
        TypeError
            ``value`` is neither a string nor an int.
        """
        if isinstance(value, str):
            return _parse_prot_string(value)
        if isinstance(value, int) and not isinstance(value, bool):
            every = int(cls.READ | cls.WRITE | cls.EXEC)
            if value < 0 or value & ~every:
                raise ValueError(f"{value!r} is not a protection: use mmio.Prot flags or 'none'/'r'/'rw'/'rwx'")
        return _parse(cls, value)


_PROT_LETTERS = {"r": Prot.READ, "w": Prot.WRITE, "x": Prot.EXEC}


def _parse_prot_string(text: str) -> Prot:
    words = text.strip().lower()
    if words in ("none", "", "---"):
        return Prot.NONE
    if set(words) <= set("rwx-") and len(words) <= 3:
        prot = Prot.NONE
        for letter in words.replace("-", ""):
            prot |= _PROT_LETTERS[letter]
        return prot
    prot = Prot.NONE
    for name in words.split("|"):
        try:
            prot |= Prot[name.strip().upper()]
        except KeyError:
            raise ValueError(
                f"{text!r} is not a protection: use 'none', 'r', 'rw', 'rwx' or mmio.Prot flags"
            ) from None
    return prot


def _parse(enum_type, value):
    if isinstance(value, enum_type):
        return value
    if isinstance(value, str):
        try:
            return enum_type[value.strip().upper().replace("-", "_")]
        except KeyError:
            names = ", ".join(m.name.lower() for m in enum_type)
            raise ValueError(f"{value!r} is not a {enum_type.__name__}; choose one of: {names}") from None
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return enum_type(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a {enum_type.__name__} value") from None
    raise TypeError(f"{enum_type.__name__} must be a member or a string, not {type(value).__name__}")
