// Where a payment ends: what was paid, the invoice, how long Pro lasts; or that nothing was charged and
// a way to try again. A pending payment is asked about again until PhonePe settles it.
import { $, day, el, rupees, toLogin } from "/static/app.js";

const orderId = decodeURIComponent(location.pathname.split("/").pop() || "");
const TEXT = {
  COMPLETED: ["Payment received", "Thank you. You are on Pro: unlimited searches."],
  PENDING: ["Payment pending", "PhonePe has not confirmed the payment yet. This page updates by itself."],
  FAILED: ["Payment failed", "Nothing was charged and nothing changed. You can try again."],
  EXPIRED: ["Checkout expired", "The checkout was not completed in time, so nothing was charged. You can start a new one."],
};

function links(pairs) {
  $("next-steps").replaceChildren(...pairs.map(([label, href], i) => el("a", label, { href, class: i ? "button secondary" : "button" })));
}

function show(p) {
  const refunded = p.refund_state === "COMPLETED";
  const state = refunded ? "REFUNDED" : p.state;
  const [title, text] = refunded ? ["Payment refunded", "This payment was refunded; its Pro days were removed."] : TEXT[p.state] || ["Payment", p.state];
  $("payment-title").textContent = title;
  $("payment-state").dataset.state = state;
  $("payment-text").textContent = text;
  $("payment-facts").hidden = false;
  $("order-id").textContent = p.merchant_order_id;
  $("amount").textContent = rupees(p.amount_paise);
  const paid = p.state === "COMPLETED" && !refunded;
  for (const id of ["pro-until", "pro-until-label"]) $(id).hidden = !(paid && p.pro_until);
  if (paid && p.pro_until) $("pro-until").textContent = day(p.pro_until);
  for (const id of ["invoice", "invoice-label"]) $(id).hidden = !p.invoice_no;
  if (p.invoice_no) $("invoice").replaceChildren(el("a", `Download invoice ${p.invoice_no} (PDF)`, { href: `/api/payments/${encodeURIComponent(p.merchant_order_id)}/invoice.pdf` }));
  if (paid) links([["Start searching", "/search"], ["Your account", "/account"]]);
  else if (p.state === "FAILED" || p.state === "EXPIRED") links([["Try again", `/pricing?solution_id=${encodeURIComponent(p.solution_id || "aws-solution-finder")}`], ["Your account", "/account"]]);
  else links([["Your account", "/account"]]);
}

async function poll(delayMs) {
  const response = await fetch(`/api/payments/${encodeURIComponent(orderId)}`, { credentials: "same-origin" }).catch(() => null);
  if (response && response.status === 401) { toLogin(); return; }
  if (response && response.status === 404) {
    $("payment-title").textContent = "Payment not found";
    $("payment-state").dataset.state = "UNKNOWN";
    $("payment-text").textContent = "No payment with this number belongs to the account you are signed in with.";
    links([["Your account", "/account"]]);
    return;
  }
  if (response && response.ok) {
    const p = await response.json();
    show(p);
    if (p.state !== "PENDING") return;
  }
  setTimeout(() => poll(Math.min(delayMs * 1.5, 10000)), delayMs);
}
poll(1000);
