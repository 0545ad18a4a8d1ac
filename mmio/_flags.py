"""The flag enums of the public API and the parsing of user-supplied flags.

Every flag argument in mmio accepts the enum member or a case-insensitive
string; this module is the one place that turns either into a C value.
"""

from __future__ import annotations

import enum

from . import _constants

_TRAITS: dict[str, tuple[str, str | None]] = {}


def _advice(name: str, since: str = "2.6", discards: str | None = None) -> int:
    """The C value of ``MADV_<name>``, recording when Linux gained it and what it throws away."""
    _TRAITS[name] = (since, discards)
    return _constants.ADVICE[name]


class Advice(enum.IntEnum):
    """``madvise(2)`` advice values.

    Pass a member or its name as a case-insensitive string (``"sequential"``).
    Members whose value the build's headers lacked still exist (their Linux ABI
    number is used); a kernel that does not know one raises an ``OSError`` that
    names the kernel version it needs.

    Each member also says ``since``, the first Linux version that accepts it,
    and ``discards``: ``"always"`` for advice that throws data away wherever it
    is given (``REMOVE`` punches a hole in the file), ``"private"`` for advice
    that throws away the data of private or anonymous memory (``DONTNEED``,
    ``FREE``: a shared file mapping reads it back from the file), else ``None``.

    Examples
    --------
    >>> import mmio
    >>> mmio.Advice.parse("sequential") is mmio.Advice.SEQUENTIAL
    True
    >>> mmio.Advice.POPULATE_READ.since, mmio.Advice.DONTNEED.discards
    ('5.14', 'private')
    """

    # One row per advice: its name in <sys/mman.h> (the value comes from the build's headers or compat.h),
    # the first Linux version that accepts it, and what it throws away. Adding an advice: compat.h,
    # _posix.pxd, _constants.pyx and a row here.
    NORMAL = _advice("NORMAL")
    RANDOM = _advice("RANDOM")
    SEQUENTIAL = _advice("SEQUENTIAL")
    WILLNEED = _advice("WILLNEED")
    DONTNEED = _advice("DONTNEED", discards="private")
    FREE = _advice("FREE", since="4.5", discards="private")
    REMOVE = _advice("REMOVE", discards="always")
    DONTFORK = _advice("DONTFORK")
    DOFORK = _advice("DOFORK")
    MERGEABLE = _advice("MERGEABLE")
    UNMERGEABLE = _advice("UNMERGEABLE")
    HUGEPAGE = _advice("HUGEPAGE")
    NOHUGEPAGE = _advice("NOHUGEPAGE")
    DONTDUMP = _advice("DONTDUMP", since="3.4")
    DODUMP = _advice("DODUMP", since="3.4")
    COLD = _advice("COLD", since="5.4")
    PAGEOUT = _advice("PAGEOUT", since="5.4")
    POPULATE_READ = _advice("POPULATE_READ", since="5.14")
    POPULATE_WRITE = _advice("POPULATE_WRITE", since="5.14")
    COLLAPSE = _advice("COLLAPSE", since="6.1")

    @property
    def since(self) -> str:
        """The first Linux version that accepts this advice (``"2.6"`` for the old ones)."""
        return _TRAITS[self.name][0]

    @property
    def discards(self) -> str | None:
        """``"always"``, ``"private"`` (private or anonymous memory only) or ``None``: see the class."""
        return _TRAITS[self.name][1]

    def throws_away(self, *, private: bool) -> bool:
        """Whether this advice loses data on memory that is ``private`` (or anonymous) or not.

        Examples
        --------
        >>> import mmio
        >>> mmio.Advice.DONTNEED.throws_away(private=True), mmio.Advice.DONTNEED.throws_away(private=False)
        (True, False)
        """
        return self.discards == "always" or (self.discards == "private" and private)

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
