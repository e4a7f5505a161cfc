"""Small text helpers every layer shares: close-match suggestions and install instructions.

The lowest layer of the package: it imports nothing from plateflow, so any
module (memory, the compiler, pipeline files, the CLI, the napari plugin) can
use it without breaking the import order.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["did_you_mean", "install_hint", "closest", "close_matches", "short_repr"]


def close_matches(name: str, candidates: Iterable[str], *, limit: int = 1, cutoff: float = 0.6) -> list[str]:
    """Up to ``limit`` candidates most like ``name``, best first; case-insensitive when no exact-case one is close."""
    options = [str(c) for c in candidates]
    if not options:
        return []
    matches = difflib.get_close_matches(name, options, n=limit, cutoff=cutoff)
    if matches:
        return matches
    # "Sigma" for "sigma", "DAPI" for "dapi": a case slip is the commonest typo in a form.
    lowered = {option.lower(): option for option in options}
    return [lowered[m] for m in difflib.get_close_matches(name.lower(), list(lowered), n=limit, cutoff=cutoff)]


def closest(name: str, candidates: Iterable[str], *, cutoff: float = 0.6) -> str | None:
    """The candidate most like ``name`` (case-insensitively), or ``None`` when none is close."""
    matches = close_matches(name, candidates, limit=1, cutoff=cutoff)
    return matches[0] if matches else None


def did_you_mean(name: str, candidates: Iterable[str], *, limit: int = 1) -> str:
    """``"did you mean 'sigma'?"`` when a candidate is close to ``name``, else ``""``.

    With ``limit`` above 1 up to that many are offered: ``"did you mean 'a', 'b'?"``.
    """
    text = str(name)
    matches = [m for m in close_matches(text, candidates, limit=limit) if m != text]
    return f"did you mean {', '.join(repr(m) for m in matches)}?" if matches else ""


def install_hint(package: str, extra: str | None = None) -> str:
    """How to install what is missing: ``"pip install 'plateflow[torch]'"`` or ``"pip install torch"``.

    ``extra`` is the plateflow extra that brings ``package`` in; without one the
    package itself is named.
    """
    if extra:
        return f"pip install 'plateflow[{extra}]'"
    return f"pip install {package}"


def short_repr(value: object, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters; never raises (some objects' repr does)."""
    try:
        text = repr(value)
    except Exception:  # a user object whose __repr__ fails still needs naming in a message
        return f"<{type(value).__name__} object>"
    if not isinstance(text, str):
        return f"<{type(value).__name__} object>"
    text = " ".join(text.split())  # arrays print over several lines
    return text if len(text) <= limit else text[: limit - 3] + "..."
