// One marketplace listing: what it does, its limits and price, and where to use or buy it.
import { $, api, rupees, say } from "/static/app.js";

const id = decodeURIComponent(location.pathname.replace(/^\/solutions\/?/, ""));
const r = await api("GET", `/api/solutions/${encodeURIComponent(id)}`);
if (!r.ok) {
  $("title").textContent = "No such solution";
  say($("message"), "This solution is not in the marketplace (it may have been retired).");
} else {
  const s = r.data;
  document.title = `${s.name} · Solution Finder`;
  $("title").textContent = s.name;
  $("detail").hidden = false;
  $("detail-description").textContent = s.description;
  $("detail-anonymous").textContent = s.anonymous_limit;
  $("detail-registered").textContent = s.registered_daily_limit;
  $("detail-price").textContent = rupees(s.price_paise);
  $("detail-buy").href = `/pricing?solution_id=${encodeURIComponent(s.solution_id)}`;
  if (s.solution_id !== "aws-solution-finder") $("detail-link").href = `/account`, $("detail-link").textContent = "Get an access token";
}
