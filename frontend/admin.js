// Admin: analytics drawn as charts from /api/admin/analytics, partner applications, listings waiting for
// approval, and the live catalog.
import { $, api, el, errorText, rupees, say, toLogin, whoAmI } from "/static/app.js";
import { barChart, legend, rowChart } from "/static/charts.js";

const message = $("message");

function lastDays(n) {
  const days = [];
  for (let i = n - 1; i >= 0; i--) days.push(new Date(Date.now() - i * 86400000).toISOString().slice(0, 10));
  return days;
}

function place(id, ...nodes) {
  const figure = $(id);
  figure.replaceChildren(figure.querySelector("figcaption"), ...nodes);
}

function drawAnalytics(a) {
  const days = lastDays(a.window_days);
  $("kpis").replaceChildren(...[["MRR", rupees(a.mrr_paise)], ["ARPU, 30 days", rupees(a.arpu_paise)], ["Active Pro", a.active_pro],
    ["Revenue in window", rupees(days.reduce((s, d) => s + (a.revenue_by_day[d] || 0), 0))]].map(([k, v]) => {
    const li = el("li", k); li.append(el("strong", v)); return li;
  }));
  place("chart-revenue", barChart(days, [{ name: "revenue", cls: "bar-a", values: days.map((d) => a.revenue_by_day[d] || 0) }],
    { title: "Revenue per day", format: rupees }));
  const f = a.funnel, pct = (n, of) => (of ? ` (${Math.round((100 * n) / of)}%)` : "");
  place("chart-funnel", rowChart([
    { label: "Anonymous visitors", value: f.anonymous_visitors, cls: "bar-b" },
    { label: "Signed up", value: f.signups, cls: "bar-a" },
    { label: "Bought Pro", value: f.pro_buyers, cls: "bar-c" },
  ], { title: "Funnel", note: (r, i) => (i === 1 ? pct(f.signups, f.anonymous_visitors) : i === 2 ? pct(f.pro_buyers, f.signups) : "") }));
  const tiers = [{ name: "anonymous", cls: "bar-b" }, { name: "registered", cls: "bar-a" }, { name: "pro", cls: "bar-c" }]
    .map((t) => ({ ...t, values: days.map((d) => (a.searches_by_day[d] || {})[t.name] || 0) }));
  place("chart-searches", barChart(days, tiers, { title: "Searches by tier" }), legend(tiers));
  const top = a.no_match.slice(0, 10);
  place("chart-no-match", top.length ? rowChart(top.map((m) => ({ label: m.query, value: m.count })), { title: "Unanswered questions" })
    : el("p", "None in this window.", { class: "muted" }));
  for (const link of document.querySelectorAll("a[data-csv]")) link.href = `/api/admin/analytics/export/${link.dataset.csv}?days=${a.window_days}`;
}

async function analytics() {
  const r = await api("GET", `/api/admin/analytics?days=${$("days").value}`);
  if (r.ok) drawAnalytics(r.data); else say(message, errorText(r));
}

function button(label, cls, onClick, attrs = {}) {
  const b = el("button", label, { type: "button", class: cls, ...attrs });
  b.addEventListener("click", onClick);
  return b;
}

async function act(path, body, done) {
  const r = await api("POST", path, body);
  say(message, r.ok ? done : errorText(r), r.ok ? "ok" : "notice");
  lists();
}

async function lists() {
  const apps = await api("GET", "/api/admin/partner-applications?status=pending");
  $("no-applications").hidden = apps.ok && apps.data.length > 0;
  $("applications").replaceChildren(...(apps.ok ? apps.data : []).map((a) => {
    const row = el("tr");
    row.append(el("td", a.company, { "data-label": "Company" }), el("td", a.website, { "data-label": "Website" }),
      el("td", a.description, { "data-label": "Description" }), el("td", a.email, { "data-label": "Applicant" }));
    const cell = el("td", "", { "data-label": "Actions" });
    cell.append(button("Approve", "", () => act(`/api/admin/partner-applications/${a.application_id}/approve`, undefined, `${a.company} approved.`), { "data-approve": a.application_id }), " ",
      button("Reject", "danger", () => {
        const reason = prompt("Why is it rejected? The applicant sees this.");
        if (reason) act(`/api/admin/partner-applications/${a.application_id}/reject`, { reason }, `${a.company} rejected.`);
      }, { "data-reject": a.application_id }));
    row.append(cell);
    return row;
  }));
  const pending = await api("GET", "/api/admin/solutions?status=pending");
  $("no-pending").hidden = pending.ok && pending.data.length > 0;
  $("pending").replaceChildren(...(pending.ok ? pending.data : []).map((s) => {
    const row = el("tr");
    row.append(el("td", `${s.name} (${s.solution_id})`, { "data-label": "Solution" }), el("td", s.description, { "data-label": "Description" }),
      el("td", rupees(s.price_paise), { "data-label": "Price" }));
    const cell = el("td", "", { "data-label": "Actions" });
    cell.append(button("Approve listing", "", () => act(`/api/admin/solutions/${encodeURIComponent(s.solution_id)}/approve`, undefined, `${s.name} is live.`), { "data-approve-listing": s.solution_id }));
    row.append(cell);
    return row;
  }));
  const live = await api("GET", "/api/solutions");
  $("solutions").replaceChildren(...(live.ok ? live.data : []).map((s) => {
    const row = el("tr");
    row.append(el("td", s.solution_id, { "data-label": "Id" }), el("td", s.name, { "data-label": "Name" }), el("td", rupees(s.price_paise), { "data-label": "Price" }));
    const cell = el("td", "", { "data-label": "Actions" });
    if (s.solution_id !== "aws-solution-finder") {
      cell.append(button("Retire", "danger", () => {
        if (confirm(`Retire ${s.name}? Its tokens stop working.`)) act(`/api/admin/solutions/${encodeURIComponent(s.solution_id)}/retire`, undefined, `${s.name} retired.`);
      }));
    }
    row.append(cell);
    return row;
  }));
}

const { user, error } = await whoAmI();
if (!user && !error) toLogin("admin");
else if (user && user.role !== "admin") $("not-admin").hidden = false;
else { $("admin-body").hidden = false; $("days").addEventListener("change", analytics); analytics(); lists(); }
