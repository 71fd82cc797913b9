"""Placeholder: being written (replace this module whole)."""


def register(rt) -> None:
    return None
