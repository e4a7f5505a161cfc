"""Small text helpers every layer shares: close-match suggestions and install instructions.

The lowest layer of the package: it imports nothing from plateflow, so any
module (memory, the compiler, pipeline files, the CLI, the napari plugin) can
use it without breaking the import order.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["did_you_mean", "install_hint", "closest", "short_repr"]


def closest(name: str, candidates: Iterable[str], *, cutoff: float = 0.6) -> str | None:
    """The candidate most like ``name`` (case-insensitively), or ``None`` when none is close."""
    options = [str(c) for c in candidates]
    if not options:
        return None
    match = difflib.get_close_matches(name, options, n=1, cutoff=cutoff)
    if match:
        return match[0]
    # "Sigma" for "sigma", "DAPI" for "dapi": a case slip is the commonest typo in a form.
    lowered = {option.lower(): option for option in options}
    match = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=cutoff)
    return lowered[match[0]] if match else None


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """``"did you mean 'sigma'?"`` when a candidate is close to ``name``, else ``""``."""
    match = closest(str(name), candidates)
    return f"did you mean {match!r}?" if match is not None and match != name else ""


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
