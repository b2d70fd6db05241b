// The marketplace's listings, and the AWS catalog filtered by words, category and service (in the URL,
// so a filtered view can be shared and survives a reload).
import { $, api, el, rupees } from "/static/app.js";

const PAGE = 20;
const params = new URLSearchParams(location.search);
let offset = Number(params.get("offset")) || 0;

async function marketplace() {
  const r = await api("GET", "/api/solutions");
  $("list").replaceChildren(...(r.ok ? r.data : []).map((s) => {
    const li = el("li");
    li.append(el("a", s.name, { href: `/solutions/${encodeURIComponent(s.solution_id)}` }), el("p", s.description),
      el("p", `Pro ${rupees(s.price_paise)} · ${s.registered_daily_limit} free searches a day with an account`, { class: "services" }));
    return li;
  }));
}

function fillSelect(select, values, chosen) {
  select.replaceChildren(select.options[0], ...values.map((v) => new Option(v, v, false, v === chosen)));
}

async function catalog() {
  const q = $("catalog-q").value.trim(), category = $("catalog-category").value, service = $("catalog-service").value;
  const query = new URLSearchParams({ q, category, service, offset: String(offset), limit: String(PAGE) });
  const r = await api("GET", `/api/catalog?${query}`);
  if (!r.ok) { $("catalog-count").textContent = "The catalog could not be loaded."; return; }
  const { total, items, categories, services } = r.data;
  if ($("catalog-category").options.length === 1) fillSelect($("catalog-category"), categories, category || params.get("category"));
  if ($("catalog-service").options.length === 1) fillSelect($("catalog-service"), services, service || params.get("service"));
  $("catalog-count").textContent = total ? `${total} match${total === 1 ? "" : "es"}, showing ${offset + 1}–${offset + items.length}` : "Nothing matches these filters.";
  $("catalog").replaceChildren(...items.map((s) => {
    const li = el("li");
    li.append(el("a", s.title, { href: s.url, rel: "noopener", target: "_blank" }), el("p", s.summary),
      el("p", [...s.categories, ...s.services].join(" · "), { class: "services" }));
    return li;
  }));
  $("catalog-prev").hidden = offset === 0;
  $("catalog-next").hidden = offset + items.length >= total;
  history.replaceState(null, "", `/solutions?${new URLSearchParams({ q, category, service, offset: String(offset) })}`);
}

$("catalog-q").value = params.get("q") || "";
$("catalog-form").addEventListener("submit", (e) => { e.preventDefault(); offset = 0; catalog(); });
for (const id of ["catalog-category", "catalog-service"]) $(id).addEventListener("change", () => { offset = 0; catalog(); });
$("catalog-prev").addEventListener("click", () => { offset = Math.max(0, offset - PAGE); catalog().then(() => $("catalog-count").focus?.()); });
$("catalog-next").addEventListener("click", () => { offset += PAGE; catalog(); });
marketplace();
await catalog();
// The selects are filled after the first answer; apply the URL's filters once they exist.
if ((params.get("category") || params.get("service")) && !$("catalog-category").value && !$("catalog-service").value) {
  $("catalog-category").value = params.get("category") || "";
  $("catalog-service").value = params.get("service") || "";
  catalog();
}
