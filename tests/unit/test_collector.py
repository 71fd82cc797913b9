"""A worker's garbage collector: rarer young collections, start-up frozen,
cycles still collected."""
from __future__ import annotations

import gc
import weakref

import pytest

from stockflow import collector
from stockflow.settings import Settings


@pytest.fixture
def restore_gc():
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


class Node:
    pass


def test_tuning_sets_the_threshold_and_freezes_what_exists(restore_gc):
    already = Node()
    assert collector.tune(50_000) == (50_000, 10, 10)
    assert gc.get_threshold() == (50_000, 10, 10)
    assert gc.get_freeze_count() > 0
    assert not any(o is already for o in gc.get_objects())  # frozen: no collection walks it


def test_cycles_made_after_tuning_are_still_collected(restore_gc):
    collector.tune(50_000)
    a, b = Node(), Node()
    a.other, b.other = b, a  # a cycle: reference counting alone never frees it
    gone = weakref.ref(a)
    del a, b
    assert gone() is not None
    gc.collect()
    assert gone() is None


def test_zero_keeps_pythons_defaults_and_freezes_nothing(restore_gc):
    gc.unfreeze()
    assert collector.tune(0) == collector.PYTHON_DEFAULT == (700, 10, 10)
    assert gc.get_threshold() == (700, 10, 10)
    assert gc.get_freeze_count() == 0


def test_the_setting_defaults_to_50000_and_rejects_negatives(monkeypatch):
    assert Settings(_env_file=None).gc_threshold == 50_000
    monkeypatch.setenv("STOCKFLOW_GC_THRESHOLD", "0")
    assert Settings(_env_file=None).gc_threshold == 0
    monkeypatch.setenv("STOCKFLOW_GC_THRESHOLD", "-1")
    with pytest.raises(ValueError):
        Settings(_env_file=None)
