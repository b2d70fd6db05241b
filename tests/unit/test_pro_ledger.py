"""The Pro ledger's arithmetic: passes stack, a refund takes out exactly its own period, once."""

from __future__ import annotations

from marketplace.entitlements import DAY_S, ProLedger

T0 = 1_700_000_000


def test_a_second_pass_starts_when_the_first_ends() -> None:
    ledger = ProLedger("u", "s").grant("A", 30, T0).grant("B", 30, T0 + 10)
    assert ledger.pro_until == T0 + 60 * DAY_S and ledger.tier == "pro"
    assert ledger.grant("B", 30, T0 + 20) == ledger  # the same order twice adds nothing


def test_refunding_the_first_of_two_passes_moves_the_second_back_by_its_length() -> None:
    ledger = ProLedger("u", "s").grant("A", 30, T0).grant("B", 30, T0 + 5)
    refunded = ledger.refund("A", 30)
    assert refunded.pro_until == ledger.pro_until - 30 * DAY_S + 5  # B starts when it was paid for
    assert [(p.order_id, p.state) for p in refunded.passes] == [("A", "refunded"), ("B", "active")]
    assert refunded.refund("A", 30) == refunded  # once
    assert refunded.version == ledger.version + 1


def test_refunding_the_last_pass_keeps_the_earlier_one() -> None:
    ledger = ProLedger("u", "s").grant("A", 30, T0).grant("B", 30, T0)
    assert ledger.refund("B", 30).pro_until == T0 + 30 * DAY_S


def test_refunding_the_only_pass_is_back_to_registered() -> None:
    refunded = ProLedger("u", "s").grant("A", 30, T0).refund("A", 30)
    assert refunded.pro_until == 0 and refunded.tier == "registered"


def test_refunding_an_expired_pass_leaves_a_later_one_alone() -> None:
    later = T0 + 100 * DAY_S
    ledger = ProLedger("u", "s").grant("A", 30, T0).grant("B", 30, later)
    assert ledger.refund("A", 30).pro_until == later + 30 * DAY_S


def test_an_order_from_before_the_ledger_comes_off_the_base() -> None:
    legacy = ProLedger("u", "s", base_until=T0 + 40 * DAY_S)
    assert legacy.refund("OLD", 30).pro_until == T0 + 10 * DAY_S
    assert legacy.grant("A", 30, T0).pro_until == T0 + 70 * DAY_S
