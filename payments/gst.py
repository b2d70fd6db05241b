"""GST for the Pro pass: GSTIN validation (format and the public mod-36 check character), place of supply,
and the tax split of a GST-inclusive price in integer paise that always adds up to the total."""

from __future__ import annotations

import re
from dataclasses import dataclass

import msgspec

GSTIN_CHARSET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
GSTIN_FORMAT = re.compile(r"^[0-9]{2}[A-Z]{5}[0-9]{4}[A-Z][1-9A-Z]Z[0-9A-Z]$")
GST_RATE_BASIS_POINTS = 1800  # 18 % on SAC 998315 (hosting and IT infrastructure services)

# GST state codes (the first two digits of a GSTIN) and whether the place is a union territory
# without its own legislature, which charges UTGST instead of SGST.
STATES: dict[str, tuple[str, bool]] = {
    "01": ("Jammu and Kashmir", False),
    "02": ("Himachal Pradesh", False),
    "03": ("Punjab", False),
    "04": ("Chandigarh", True),
    "05": ("Uttarakhand", False),
    "06": ("Haryana", False),
    "07": ("Delhi", False),
    "08": ("Rajasthan", False),
    "09": ("Uttar Pradesh", False),
    "10": ("Bihar", False),
    "11": ("Sikkim", False),
    "12": ("Arunachal Pradesh", False),
    "13": ("Nagaland", False),
    "14": ("Manipur", False),
    "15": ("Mizoram", False),
    "16": ("Tripura", False),
    "17": ("Meghalaya", False),
    "18": ("Assam", False),
    "19": ("West Bengal", False),
    "20": ("Jharkhand", False),
    "21": ("Odisha", False),
    "22": ("Chhattisgarh", False),
    "23": ("Madhya Pradesh", False),
    "24": ("Gujarat", False),
    "26": ("Dadra and Nagar Haveli and Daman and Diu", True),
    "27": ("Maharashtra", False),
    "29": ("Karnataka", False),
    "30": ("Goa", False),
    "31": ("Lakshadweep", True),
    "32": ("Kerala", False),
    "33": ("Tamil Nadu", False),
    "34": ("Puducherry", False),
    "35": ("Andaman and Nicobar Islands", True),
    "36": ("Telangana", False),
    "37": ("Andhra Pradesh", False),
    "38": ("Ladakh", True),
}


def gstin_check_character(first14: str) -> str:
    """The 15th character of a GSTIN: the mod-36 checksum over its first 14, weights alternating 1 and 2."""
    total = 0
    for i, char in enumerate(first14):
        value = GSTIN_CHARSET.index(char) * (2 if i % 2 else 1)
        total += value // 36 + value % 36
    return GSTIN_CHARSET[(36 - total % 36) % 36]


def valid_gstin(gstin: str) -> bool:
    gstin = gstin.strip().upper()
    return (
        bool(GSTIN_FORMAT.fullmatch(gstin)) and gstin[:2] in STATES and gstin_check_character(gstin[:14]) == gstin[14]
    )


class TaxLine(msgspec.Struct):
    name: str  # CGST | SGST | UTGST | IGST
    rate_basis_points: int
    amount_paise: int


@dataclass(frozen=True)
class TaxSplit:
    total_paise: int
    taxable_paise: int
    lines: list[TaxLine]
    place_of_supply: str
    export_under_lut: bool

    @property
    def tax_paise(self) -> int:
        return sum(line.amount_paise for line in self.lines)


def split_tax(
    total_paise: int,
    *,
    seller_state_code: str,
    buyer_country: str,
    buyer_state_code: str | None,
    inclusive: bool = True,
) -> TaxSplit:
    """Tax for one sale. Inclusive prices are split so that taxable + every tax line == total exactly;
    the rounding paisa goes to the taxable value. Exports (outside India) are zero-rated under LUT."""
    if buyer_country.upper() != "IN":
        return TaxSplit(total_paise, total_paise, [], f"Outside India ({buyer_country.upper()})", True)
    if buyer_state_code not in STATES:
        raise ValueError(f"unknown GST state code {buyer_state_code!r}")
    if inclusive:
        taxable = round(total_paise * 10_000 / (10_000 + GST_RATE_BASIS_POINTS))
        tax = total_paise - taxable
    else:
        taxable = total_paise
        tax = round(total_paise * GST_RATE_BASIS_POINTS / 10_000)
    state_name, union_territory = STATES[buyer_state_code]
    if buyer_state_code == seller_state_code:
        half = tax // 2
        local = "UTGST" if union_territory else "SGST"
        lines = [
            TaxLine("CGST", GST_RATE_BASIS_POINTS // 2, tax - half),
            TaxLine(local, GST_RATE_BASIS_POINTS // 2, half),
        ]
    else:
        lines = [TaxLine("IGST", GST_RATE_BASIS_POINTS, tax)]
    grand_total = taxable + tax
    return TaxSplit(grand_total, taxable, lines, f"{state_name} ({buyer_state_code})", False)


def financial_year(epoch_s: int) -> str:
    """India's financial year, April to March: a sale on 2026-11-26 is in 2026-27."""
    import time

    tm = time.gmtime(epoch_s + 19800)  # IST
    start = tm.tm_year if tm.tm_mon >= 4 else tm.tm_year - 1
    return f"{start}-{(start + 1) % 100:02d}"
