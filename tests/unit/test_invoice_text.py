"""Invoice text: fonts from the Noto packages cover Latin Extended and Devanagari, HarfBuzz shapes it,
and whatever no font has prints as '?' instead of failing the PDF."""

from __future__ import annotations

import io
import re
import time

import pypdf

from core.settings import load_settings
from payments.checkout import Transaction
from payments.invoices import InvoiceIssuer, create_pdf, invoice_fonts, printable


def test_fonts_cover_polish_and_devanagari() -> None:
    covered = invoice_fonts().covered
    for text in ("Łukasz Żółć", "मुंबई, महाराष्ट्र", "₹", "Nguyễn", "Ελλάδα", "Москва"):
        assert printable(text, covered) == text


def test_unknown_and_control_characters_are_replaced() -> None:
    covered = invoice_fonts().covered
    assert printable("A\x00B\nC\u202eD 日本 😀", covered) == "A B C D ?? ?"


def test_devanagari_is_shaped_into_conjuncts() -> None:
    pdf = create_pdf()
    pdf.add_page()
    pdf.set_font("Noto", size=10)
    pdf.cell(0, 8, "क्षत्रिय")  # eight code points: क्ष and त्र are conjuncts, ि moves before त्र
    content = bytes(pdf.output())
    glyphs = re.search(rb"Td \((.*?)\) Tj", content, re.S)
    assert glyphs is not None and len(glyphs.group(1)) // 2 == 4


def test_an_invoice_for_a_polish_name_and_a_devanagari_address_renders() -> None:
    txn = Transaction(
        merchant_order_id="SF-unit-1",
        user_id="u",
        email="lukasz@example.com",
        solution_id="aws-solution-finder",
        amount_paise=49900,
        state="COMPLETED",
        created_at="0",
        expire_at=0,
        completed_at=int(time.time()),
        buyer_name="Łukasz Żółć",
        billing_address="मुंबई, महाराष्ट्र",
        billing_state_code="27",
        invoice_no="INV/2026-27/0007",
    )
    data = InvoiceIssuer(None, load_settings({})).render(txn)
    text = pypdf.PdfReader(io.BytesIO(data)).pages[0].extract_text()
    assert "Łukasz Żółć" in text and "महाराष्ट्र" in text and "INV/2026-27/0007" in text
