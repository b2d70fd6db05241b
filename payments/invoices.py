"""GST tax invoices: one per completed payment, numbered INV/<financial year>/<NNNN> from an atomic
per-year counter in DynamoDB (no gaps, no duplicates), rendered to PDF, stored locally or in S3."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from fpdf import FPDF
from num2words import num2words

from core.dynamo import values
from core.settings import Settings
from payments.checkout import Transaction, TransactionStore
from payments.gst import STATES, financial_year, split_tax

SAC = "998315"


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
        s = self.settings
        tax = split_tax(
            txn.amount_paise,
            seller_state_code=s.seller_state_code,
            buyer_country=txn.billing_country,
            buyer_state_code=txn.billing_state_code or s.seller_state_code,
            inclusive=s.prices_include_gst,
        )
        rupees = tax.total_paise // 100
        paise = tax.total_paise % 100
        words = (
            f"Rupees {num2words(rupees, lang='en_IN').title()}"
            + (f" and {num2words(paise, lang='en_IN').title()} Paise" if paise else "")
            + " Only"
        )

        def money(value: int) -> str:
            return f"Rs. {value / 100:,.2f}"

        pdf = FPDF()
        pdf.set_compression(False)
        pdf.add_page()
        pdf.set_font("Helvetica", "B", 16)
        pdf.cell(0, 10, "TAX INVOICE", new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", size=10)
        seller_state = STATES.get(s.seller_state_code, ("", False))[0]
        for line in (
            s.seller_name,
            s.seller_address,
            f"GSTIN: {s.seller_gstin}  State: {seller_state} ({s.seller_state_code})",
            f"Invoice no: {txn.invoice_no}    Date: {time.strftime('%d %b %Y', time.gmtime(txn.completed_at))}",
            f"Order: {txn.merchant_order_id}",
        ):
            pdf.cell(0, 6, line, new_x="LMARGIN", new_y="NEXT")
        pdf.ln(3)
        pdf.set_font("Helvetica", "B", 10)
        pdf.cell(0, 6, "Bill to", new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", size=10)
        buyer = [
            txn.billing_company or txn.buyer_name or txn.email,
            txn.billing_address,
            f"{txn.billing_postal_code} {txn.billing_country}".strip(),
            f"GSTIN: {txn.billing_gstin}" if txn.billing_gstin else "",
            f"Place of supply: {tax.place_of_supply}",
        ]
        for line in filter(None, buyer):
            pdf.cell(0, 6, line, new_x="LMARGIN", new_y="NEXT")
        pdf.ln(3)
        pdf.set_font("Helvetica", "B", 10)
        for header, width in (("Description", 90), ("SAC", 25), ("Qty", 15), ("Taxable value", 50)):
            pdf.cell(width, 7, header, border=1)
        pdf.ln()
        pdf.set_font("Helvetica", size=10)
        period = s.pro_period_days
        for cell, width in (
            (f"Solution Finder Pro, {period} days ({txn.solution_id})", 90),
            (SAC, 25),
            ("1", 15),
            (money(tax.taxable_paise), 50),
        ):
            pdf.cell(width, 7, cell, border=1)
        pdf.ln()
        for tax_line in tax.lines:
            pdf.cell(130, 7, f"{tax_line.name} @ {tax_line.rate_basis_points / 100:g}%", border=1)
            pdf.cell(50, 7, money(tax_line.amount_paise), border=1)
            pdf.ln()
        if tax.export_under_lut:
            pdf.cell(180, 7, "Supply meant for export under LUT without payment of integrated tax (IGST 0%)", border=1)
            pdf.ln()
        pdf.set_font("Helvetica", "B", 10)
        pdf.cell(130, 7, "Total (incl. GST)" if s.prices_include_gst else "Total", border=1)
        pdf.cell(50, 7, money(tax.total_paise), border=1)
        pdf.ln(10)
        pdf.set_font("Helvetica", size=10)
        pdf.multi_cell(0, 6, f"Amount in words: {words}")
        pdf.ln(4)
        pdf.set_font("Helvetica", "B", 28)
        pdf.set_text_color(0, 128, 0)
        pdf.cell(0, 14, "PAID", new_x="LMARGIN", new_y="NEXT")
        return bytes(pdf.output())

    async def pdf(self, txn: Transaction) -> bytes:
        """The stored PDF, rendered and saved on first use (locally, or in S3 when INVOICE_BUCKET is set)."""
        if self.settings.invoice_bucket:
            return await self._from_s3(txn)
        path = self.path(txn)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(self.render(txn))
            tmp.replace(path)
        return path.read_bytes()

    async def _from_s3(self, txn: Transaction) -> bytes:
        import aioboto3

        key = f"invoices/{txn.invoice_no.replace('/', '_')}.pdf"
        async with aioboto3.Session().client("s3", region_name=self.settings.aws_region) as s3:
            try:
                response = await s3.get_object(Bucket=self.settings.invoice_bucket, Key=key)
                return bytes(await response["Body"].read())
            except s3.exceptions.NoSuchKey:
                data = self.render(txn)
                await s3.put_object(
                    Bucket=self.settings.invoice_bucket, Key=key, Body=data, ContentType="application/pdf"
                )
                return data
