// The landing page: the tiers' limits and price come from the catalog record, so they never drift.
import { $, FINDER, rupees } from "/static/app.js";

const response = await fetch(`/api/solutions/${FINDER}`).catch(() => null);
if (response && response.ok) {
  const s = await response.json();
  $("anonymous-limit").textContent = s.anonymous_limit;
  $("registered-limit").textContent = s.registered_daily_limit;
  $("pro-price").textContent = rupees(s.price_paise);
}
