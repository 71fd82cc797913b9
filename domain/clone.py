"""Copying a state document before a pure function changes it.

Order states are JSON-shaped (dicts, lists, strings, numbers; they live in
a JSON table), so a copy only has to walk dicts and lists: ``copy.deepcopy``
also keeps a memo for shared and recursive objects, which these documents
never hold, and cost 10% of the worker's CPU in the orders profile
(docs/benchmarks.md).
"""
from __future__ import annotations

import copy
from typing import Any

_ATOMS = (str, int, float, bool, type(None))


def clone(value: Any) -> Any:
    kind = type(value)
    if kind is dict:
        return {k: v if type(v) in _ATOMS else clone(v) for k, v in value.items()}
    if kind is list:
        return [v if type(v) in _ATOMS else clone(v) for v in value]
    if kind in _ATOMS:
        return value
    if kind is tuple:
        return tuple(clone(v) for v in value)
    return copy.deepcopy(value)  # not JSON-shaped: take no chances
