import { $, el, rupees, say } from "/static/app.js";

const id = decodeURIComponent(location.pathname.replace(/^\/solutions\/?/, ""));
if (id) {
  const response = await fetch(`/api/solutions/${encodeURIComponent(id)}`);
  if (!response.ok) {
    say($("message"), "No such solution.");
  } else {
    const s = await response.json();
    $("title").textContent = s.name;
    $("detail").hidden = false;
    $("detail-name").textContent = s.name;
    $("detail-description").textContent = s.description;
    $("detail-anonymous").textContent = s.anonymous_limit;
    $("detail-registered").textContent = s.registered_daily_limit;
    $("detail-price").textContent = rupees(s.price_paise);
    if (s.solution_id !== "aws-solution-finder") $("detail-link").href = `/pricing?solution_id=${encodeURIComponent(s.solution_id)}`;
  }
} else {
  const list = await (await fetch("/api/solutions")).json();
  $("list").replaceChildren(...list.map((s) => {
    const li = el("li");
    li.append(el("a", s.name, { href: `/solutions/${encodeURIComponent(s.solution_id)}` }), el("p", s.description));
    return li;
  }));
}
