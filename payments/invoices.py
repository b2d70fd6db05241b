"""GST tax invoices: one per completed payment, numbered INV/<financial year>/<NNNN> from an atomic
per-year counter in DynamoDB (no gaps, no duplicates), rendered to PDF, stored locally or in S3.

PDFs are set in Noto Sans (Latin, Latin Extended, Greek, Cyrillic, Vietnamese) with Noto Sans Devanagari
as fallback, both from their PyPI font packages, and shaped by HarfBuzz (uharfbuzz) so conjuncts and
vowel signs come out right; a character no font has prints as "?" instead of failing the invoice.
Rendering is CPU work and runs in a thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.metadata
import logging
import tempfile
import threading
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fontpkg_noto_sans
import fontpkg_noto_sans_devanagari
from fontTools.ttLib import TTFont
from fpdf import FPDF
from num2words import num2words

from core.dynamo import values
from core.settings import Settings
from payments.checkout import Transaction, TransactionStore
from payments.gst import STATES, financial_year, split_tax

SAC = "998315"
log = logging.getLogger("payments")
LATIN_FONT = fontpkg_noto_sans.ROOT / "files" / "NotoSans[wdth,wght].ttf"
DEVANAGARI_FONT = fontpkg_noto_sans_devanagari.ROOT / "files" / "NotoSansDevanagari[wdth,wght].ttf"
KEEP_FORMAT = {"\u200c", "\u200d"}  # zero-width (non-)joiners choose Devanagari forms


@dataclass(frozen=True)
class InvoiceFonts:
    regular: Path  # the variable font's default instance is the regular weight
    bold: Path
    devanagari: Path
    covered: frozenset[int]


_fonts_lock = threading.Lock()


def _bold_latin(regular: Path) -> Path:
    """A static bold instance of the Latin ranges, made once per machine and version: instancing the
    whole variable font takes seconds, these few hundred glyphs well under one."""
    from fontTools import subset
    from fontTools.varLib import instancer

    logging.getLogger("fontTools").setLevel(logging.WARNING)  # it narrates every table at INFO
    target = Path(tempfile.gettempdir()) / f"sf-fonts-noto-sans-{importlib.metadata.version('fontpkg-noto-sans')}"
    path = target / "NotoSans-Bold-Latin.ttf"
    if path.exists():
        return path
    with TTFont(regular) as font:
        subsetter = subset.Subsetter(subset.Options(layout_features=["*"], name_IDs=["*"], notdef_outline=True))
        subsetter.populate(unicodes=[*range(0x20, 0x250), 0x20B9, *range(0x2010, 0x2027)])
        subsetter.subset(font)
        bold = instancer.instantiateVariableFont(font, {"wght": 700, "wdth": 100})
        target.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{threading.get_ident()}.tmp")
        bold.save(tmp)
        tmp.replace(path)
    return path


@functools.cache
def invoice_fonts() -> InvoiceFonts:
    with _fonts_lock:
        covered: set[int] = set()
        for path in (LATIN_FONT, DEVANAGARI_FONT):
            with TTFont(path, lazy=True) as font:
                covered.update(font.getBestCmap())
        return InvoiceFonts(LATIN_FONT, _bold_latin(LATIN_FONT), DEVANAGARI_FONT, frozenset(covered))


def printable(text: str, covered: frozenset[int]) -> str:
    """Text as the invoice can print it: NFC, control characters as spaces, unknown characters as '?'."""
    out = []
    for char in unicodedata.normalize("NFC", text):
        category = unicodedata.category(char)
        if category in ("Cc", "Zl", "Zp") or (category == "Cf" and char not in KEEP_FORMAT):
            out.append(" ")
        elif char in KEEP_FORMAT or ord(char) in covered:
            out.append(char)
        else:
            out.append("?")
    return "".join(out)


def create_pdf() -> FPDF:
    """An FPDF with the invoice fonts ("Noto" regular and bold, Devanagari as fallback) and shaping on."""
    fonts = invoice_fonts()
    pdf = FPDF()
    pdf.set_compression(False)
    pdf.add_font("Noto", "", fonts.regular)
    pdf.add_font("Noto", "B", fonts.bold)
    pdf.add_font("NotoDevanagari", "", fonts.devanagari)
    pdf.set_fallback_fonts(["Noto", "NotoDevanagari"], exact_match=False)
    pdf.set_text_shaping(True)
    return pdf


class InvoiceIssuer:
    def __init__(self, dynamodb: Any, settings: Settings) -> None:
        self.dynamodb = dynamodb
        self.settings = settings
        self.counters = settings.table("counters")
        self.store = TransactionStore(dynamodb, settings)

    async def issue(self, merchant_order_id: str) -> str:
        """The payment's invoice number, assigned once: counter and payment change in one transaction."""
        for _ in range(50):
            txn = await self.store.get(merchant_order_id)
            if txn is None or txn.state != "COMPLETED":
                raise ValueError("only a completed payment gets an invoice")
            if txn.invoice_no:
                return txn.invoice_no
            year = financial_year(txn.completed_at or int(time.time()))
            counter = await self.dynamodb.get_item(
                TableName=self.counters, Key={"name": {"S": f"invoice#{year}"}}, ConsistentRead=True
            )
            current = int(counter.get("Item", {}).get("value", {}).get("N", 0))
            number = f"INV/{year}/{current + 1:04d}"
            condition = "attribute_not_exists(#v)" if current == 0 else "#v = :current"
            counter_values = values(next=current + 1) | (values(current=current) if current else {})
            try:
                await self.dynamodb.transact_write_items(
                    TransactItems=[
                        {
                            "Update": {
                                "TableName": self.counters,
                                "Key": {"name": {"S": f"invoice#{year}"}},
                                "UpdateExpression": "SET #v = :next",
                                "ConditionExpression": condition,
                                "ExpressionAttributeNames": {"#v": "value"},
                                "ExpressionAttributeValues": counter_values,
                            }
                        },
                        {
                            "Update": {
                                "TableName": self.settings.table("payment-transactions"),
                                "Key": {"merchant_order_id": {"S": merchant_order_id}},
                                "UpdateExpression": "SET invoice_no = :no",
                                "ConditionExpression": "attribute_not_exists(invoice_no) OR invoice_no = :empty",
                                "ExpressionAttributeValues": values(no=number, empty=""),
                            }
                        },
                    ]
                )
                return number
            except self.dynamodb.exceptions.TransactionCanceledException:
                continue  # another payment took that number, or this one got its invoice meanwhile
        raise RuntimeError("could not assign an invoice number")

    def path(self, txn: Transaction) -> Path:
        return Path(self.settings.invoice_dir) / (txn.invoice_no.replace("/", "_") + ".pdf")

    def render(self, txn: Transaction) -> bytes:
        """The invoice as PDF bytes (CPU-bound: call it through asyncio.to_thread)."""
        covered = invoice_fonts().covered
        pdf = create_pdf()
        pdf.add_page()

        def line(text: str, style: str = "", size: int = 10, height: float = 6) -> None:
            pdf.set_font("Noto", style, size)
            pdf.multi_cell(0, height, printable(text, covered), new_x="LMARGIN", new_y="NEXT")

        self._header(txn, line)
        self._buyer(txn, line, pdf)
        self._lines(txn, pdf, line)
        return bytes(pdf.output())

    def _header(self, txn: Transaction, line: Any) -> None:
        s = self.settings
        line("TAX INVOICE", "B", 16, 10)
        seller_state = STATES.get(s.seller_state_code, ("", False))[0]
        for text in (
            s.seller_name,
            s.seller_address,
            f"GSTIN: {s.seller_gstin}  State: {seller_state} ({s.seller_state_code})",
            f"Invoice no: {txn.invoice_no}    Date: {time.strftime('%d %b %Y', time.gmtime(txn.completed_at))}",
            f"Order: {txn.merchant_order_id}",
        ):
            line(text)

    def _tax(self, txn: Transaction) -> Any:
        s = self.settings
        return split_tax(
            txn.amount_paise,
            seller_state_code=s.seller_state_code,
            buyer_country=txn.billing_country,
            buyer_state_code=txn.billing_state_code or s.seller_state_code,
            inclusive=s.prices_include_gst,
        )

    def _buyer(self, txn: Transaction, line: Any, pdf: FPDF) -> None:
        pdf.ln(3)
        line("Bill to", "B")
        buyer = [
            txn.billing_company or txn.buyer_name or txn.email,
            txn.buyer_name if txn.billing_company and txn.buyer_name else "",
            txn.billing_address,
            f"{txn.billing_postal_code} {txn.billing_country}".strip(),
            f"GSTIN: {txn.billing_gstin}" if txn.billing_gstin else "",
            f"Place of supply: {self._tax(txn).place_of_supply}",
        ]
        for text in filter(None, buyer):
            line(text)
        pdf.ln(3)

    def _lines(self, txn: Transaction, pdf: FPDF, line: Any) -> None:
        s = self.settings
        tax = self._tax(txn)
        pdf.set_font("Noto", "B", 10)
        for header, width in (("Description", 90), ("SAC", 25), ("Qty", 15), ("Taxable value", 50)):
            pdf.cell(width, 7, header, border=1)
        pdf.ln()
        pdf.set_font("Noto", "", 10)
        days = txn.pro_days or s.pro_period_days
        for cell, width in (
            (f"Solution Finder Pro, {days} days ({txn.solution_id})", 90),
            (SAC, 25),
            ("1", 15),
            (_money(tax.taxable_paise), 50),
        ):
            pdf.cell(width, 7, cell, border=1)
        pdf.ln()
        for tax_line in tax.lines:
            pdf.cell(130, 7, f"{tax_line.name} @ {tax_line.rate_basis_points / 100:g}%", border=1)
            pdf.cell(50, 7, _money(tax_line.amount_paise), border=1)
            pdf.ln()
        if tax.export_under_lut:
            pdf.cell(180, 7, "Supply meant for export under LUT without payment of integrated tax (IGST 0%)", border=1)
            pdf.ln()
        pdf.set_font("Noto", "B", 10)
        pdf.cell(130, 7, "Total (incl. GST)" if s.prices_include_gst else "Total", border=1)
        pdf.cell(50, 7, _money(tax.total_paise), border=1)
        pdf.ln(10)
        line(f"Amount in words: {_words(tax.total_paise)}")
        pdf.ln(4)
        pdf.set_text_color(0, 128, 0)
        line("PAID", "B", 28, 14)

    async def pdf(self, txn: Transaction) -> bytes:
        """The stored PDF, rendered and saved on first use (locally, or in S3 when INVOICE_BUCKET is set)."""
        if self.settings.invoice_bucket:
            return await self._from_s3(txn)
        return await asyncio.to_thread(self._local, txn)

    def _local(self, txn: Transaction) -> bytes:
        path = self.path(txn)
        if path.exists():
            return path.read_bytes()
        data = self.render(txn)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{threading.get_ident()}.tmp")
            tmp.write_bytes(data)
            tmp.replace(path)
        except OSError as exc:  # the buyer still gets the invoice; keeping a copy is tried again next time
            log.warning("invoice %s not stored: %s", txn.invoice_no, type(exc).__name__)
        return data

    async def _from_s3(self, txn: Transaction) -> bytes:
        import aioboto3

        key = f"invoices/{txn.invoice_no.replace('/', '_')}.pdf"
        async with aioboto3.Session().client("s3", region_name=self.settings.aws_region) as s3:
            try:
                response = await s3.get_object(Bucket=self.settings.invoice_bucket, Key=key)
                return bytes(await response["Body"].read())
            except s3.exceptions.NoSuchKey:
                data = await asyncio.to_thread(self.render, txn)
                await s3.put_object(
                    Bucket=self.settings.invoice_bucket, Key=key, Body=data, ContentType="application/pdf"
                )
                return data


def _money(value: int) -> str:
    return f"Rs. {value / 100:,.2f}"


def _words(total_paise: int) -> str:
    rupees, paise = divmod(total_paise, 100)
    return (
        f"Rupees {num2words(rupees, lang='en_IN').title()}"
        + (f" and {num2words(paise, lang='en_IN').title()} Paise" if paise else "")
        + " Only"
    )
