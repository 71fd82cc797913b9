from stockflow.domain.idempotency import Seen, classify, dedupe_key, position


def test_new_record():
    assert classify(None, position("t", 0, 5), False) is Seen.NEW


def test_same_record_redelivered_after_crash():
    here = position("t", 0, 5)
    assert classify(here, here, True) is Seen.REDELIVERED
    # state landed but the seen marker did not
    assert classify(None, here, True) is Seen.REDELIVERED


def test_seen_marker_without_state_is_reapplied():
    here = position("t", 0, 5)
    assert classify(here, here, False) is Seen.NEW


def test_second_record_with_same_event_id_is_a_duplicate():
    assert classify(position("t", 0, 5), position("t", 0, 9), False) is Seen.DUPLICATE


def test_dedupe_key_scoped_by_record_key():
    assert dedupe_key("SKU1", "e1") != dedupe_key("SKU2", "e1")
