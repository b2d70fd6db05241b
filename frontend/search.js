// The search page: start a search as whoever is signed in (the session cookie carries the plan), render
// the streamed answer, resume after a reload, stop it. Model text is only ever placed with textContent.
import { $, FINDER, HANDOFF_KEY, api, csrf, duration, el, finderEntitlement, day, remaining, whoAmI } from "/static/app.js";

const form = $("search-form"), input = $("q"), go = $("go"), stopBtn = $("stop");
const answerEl = $("answer"), sourcesEl = $("sources"), quotaEl = $("quota"), noticeEl = $("notice");
const statusEl = $("status"), modeEl = $("mode");
const RESUME_KEY = "sf_resume", PENDING_KEY = "sf_pending_query", ANON_QUOTA_KEY = "sf_anon_quota";
let source = null, current = null, busy = false, answerText = "", sources = [], signedIn = false;

function notice(text, links = [], kind = "") {
  noticeEl.className = kind ? `notice ${kind}` : "notice";
  noticeEl.replaceChildren(document.createTextNode(text));
  for (const [label, href] of links) noticeEl.append(" ", el("a", label, { href }));
  noticeEl.hidden = false;
}

function showQuota(q) {
  if (!q) return;
  if (q.limit < 0) { quotaEl.textContent = "Pro: unlimited searches"; return; }
  const anonymous = q.access_tier === "anonymous";
  quotaEl.textContent = `${q.remaining} of ${q.limit} ${anonymous ? "free searches left" : "searches left today"}`;
  if (anonymous) localStorage.setItem(ANON_QUOTA_KEY, JSON.stringify(q));
}

function quotaOnLoad(user) {
  const finder = finderEntitlement(user);
  if (finder) {
    const left = remaining(finder.quota);
    if (left < 0) {
      quotaEl.textContent = finder.pro_until ? `Pro until ${day(finder.pro_until)}: unlimited searches` : "Pro: unlimited searches";
    } else {
      const reset = finder.quota.resets_in_s ? ` · resets in ${duration(finder.quota.resets_in_s)}` : "";
      quotaEl.textContent = `${left} of ${finder.quota.daily_limit} searches left today${reset}`;
    }
  } else if (!user) {
    const saved = JSON.parse(localStorage.getItem(ANON_QUOTA_KEY) || "null");
    quotaEl.textContent = saved ? `${saved.remaining} of ${saved.limit} free searches left` : "Free to try: no account needed.";
  }
}

// A small, safe subset of Markdown: paragraphs, "- " lists, **bold**, and [n] citations as links.
function inline(text) {
  const nodes = [];
  for (const part of text.split(/(\[\d{1,2}\]|\*\*[^*]+\*\*)/)) {
    const cite = part.match(/^\[(\d{1,2})\]$/), bold = part.match(/^\*\*([^*]+)\*\*$/);
    const target = cite && sources[Number(cite[1]) - 1];
    if (target) {
      nodes.push(el("a", `[${cite[1]}]`, { href: `#source-${cite[1]}`, class: "cite", "aria-label": `Source ${cite[1]}: ${target.title}` }));
    } else if (bold) {
      nodes.push(el("strong", bold[1]));
    } else if (part) {
      nodes.push(document.createTextNode(part.replaceAll("**", "")));
    }
  }
  return nodes;
}

function renderAnswer() {
  const blocks = [];
  for (const block of answerText.split(/\n\s*\n/)) {
    let list = null, para = null;
    for (const line of block.split("\n")) {
      const item = line.match(/^\s*[-*]\s+(.*)$/);
      if (item) {
        if (!list) { list = el("ul"); blocks.push(list); para = null; }
        const li = el("li");
        li.append(...inline(item[1]));
        list.append(li);
      } else if (line.trim()) {
        if (!para) { para = el("p"); blocks.push(para); list = null; } else para.append(" ");
        para.append(...inline(line.trim()));
      }
    }
  }
  answerEl.replaceChildren(...blocks);
}

function renderSources(results) {
  sources = results;
  $("sources-section").hidden = !results.length;
  sourcesEl.replaceChildren(...results.map((r, i) => {
    const li = el("li", null, { id: `source-${i + 1}`, tabindex: "-1" });
    li.append(el("a", r.title, { href: r.url, rel: "noopener", target: "_blank" }), el("p", r.summary));
    if (r.services && r.services.length) li.append(el("p", r.services.join(" · "), { class: "services" }));
    return li;
  }));
}

function setBusy(on) {
  busy = on;
  go.disabled = on;
  answerEl.setAttribute("aria-busy", on ? "true" : "false");
}

function finish(message) {
  const hadFocus = document.activeElement === stopBtn || document.activeElement === document.body;
  if (source) { source.close(); source = null; }
  stopBtn.hidden = true;
  setBusy(false);
  sessionStorage.removeItem(RESUME_KEY);
  if (message) statusEl.textContent = message;
  if (hadFocus) input.focus(); // never leave keyboard users on <body> when Stop disappears
}

function onSources(data) {
  renderSources(data.no_match ? [] : data.results);
  modeEl.hidden = data.answer_mode !== "extractive";
  modeEl.textContent = "Assembled from the catalog entries' own words, without a language model.";
}

function listen(searchId, lastId, query) {
  current = searchId;
  $("intro").hidden = true;
  $("answer-section").hidden = false;
  const url = `/api/searches/${encodeURIComponent(searchId)}/events` + (lastId ? `?last_event_id=${encodeURIComponent(lastId)}` : "");
  source = new EventSource(url);
  stopBtn.hidden = false;
  setBusy(true);
  const remember = (e) => sessionStorage.setItem(RESUME_KEY, JSON.stringify({ searchId, lastId: e.lastEventId, query, answer: answerText, sources }));
  source.addEventListener("sources", (e) => { onSources(JSON.parse(e.data)); remember(e); });
  source.addEventListener("token", (e) => { answerText += JSON.parse(e.data).text; renderAnswer(); remember(e); });
  source.addEventListener("done", (e) => {
    answerText = JSON.parse(e.data).answer; renderAnswer();
    finish(sources.length ? `Answer ready, citing ${sources.length} source${sources.length === 1 ? "" : "s"}.` : "Answer ready.");
  });
  source.addEventListener("error", (e) => {
    if (e.data) {
      const d = JSON.parse(e.data);
      const text = d.reason === "cancelled" ? "Search stopped." : `The search failed: ${d.error}`;
      notice(text);
      finish(text);
    } else if (!navigator.onLine) {
      notice("You are offline; the answer will resume when the connection returns.");
    }
  });
}

function refused(status, body, retryAfter, query) {
  const wait = retryAfter ? ` They come back in ${duration(retryAfter)}.` : "";
  if (status === 429 && body.reason === "anonymous_limit_exceeded") {
    sessionStorage.setItem(PENDING_KEY, query);
    quotaEl.textContent = `0 of ${body.limit} free searches left`;
    notice("You have used your free searches. Create a free account for 10 searches a day; your question will be waiting.",
      [["Create an account", `/register?solution_id=${FINDER}&next=/search`], ["Log in", "/login?next=/search"]]);
  } else if (status === 429) {
    quotaEl.textContent = `0 of ${body.limit} searches left today`;
    notice(`You have used today's ${body.limit} searches.${wait} Pro has no daily limit:`, [["Upgrade to Pro", `/pricing?solution_id=${FINDER}`]]);
  } else if (status === 401) {
    localStorage.removeItem(HANDOFF_KEY);
    notice("Your access token is no longer valid. Log in to search on your plan.", [["Log in", "/login?next=/search"]]);
  } else if (body.reason === "email_unverified") {
    notice("Verify your email address to search on your plan.", [["Enter your code", "/verify"]]);
  } else {
    notice(status >= 500 ? "The service is having trouble right now. Please try again in a moment." : body.error || "The search could not be started.");
  }
}

async function post(query) {
  // Signed in, the session cookie and the CSRF header are the credential; a handed-off token only otherwise.
  const headers = { "Content-Type": "application/json", "X-CSRFToken": await csrf() };
  const handoff = localStorage.getItem(HANDOFF_KEY);
  if (!signedIn && handoff) headers.Authorization = `Bearer ${handoff}`;
  return fetch("/api/searches", { method: "POST", headers, body: JSON.stringify({ query }), credentials: "same-origin" });
}

async function startSearch(query) {
  if (busy) return; // a second Enter must not throw away the answer being paid for
  setBusy(true);
  noticeEl.hidden = true;
  statusEl.textContent = "Searching…";
  let response;
  try {
    response = await post(query);
  } catch {
    setBusy(false);
    notice("You appear to be offline. Check your connection and try again.");
    return;
  }
  const body = await response.json().catch(() => ({}));
  if (response.status !== 202) {
    setBusy(false);
    statusEl.textContent = "";
    refused(response.status, body, Number(response.headers.get("Retry-After")) || 0, query);
    return;
  }
  sessionStorage.removeItem(PENDING_KEY);
  answerText = ""; renderAnswer(); renderSources([]); modeEl.hidden = true;
  showQuota(body.quota);
  listen(body.search_id, null, query);
}

form.addEventListener("submit", (e) => { e.preventDefault(); const q = input.value.trim(); if (q) startSearch(q); });
input.addEventListener("keydown", (e) => {
  if (e.key === "Escape" && busy && current) { e.preventDefault(); stopSearch(); }
});
async function stopSearch() {
  if (current) await api("POST", `/api/searches/${encodeURIComponent(current)}/cancel`);
}
stopBtn.addEventListener("click", stopSearch);
for (const b of document.querySelectorAll("button.example")) {
  b.addEventListener("click", () => { input.value = b.textContent; startSearch(b.textContent); });
}
window.addEventListener("online", () => { noticeEl.hidden = true; });

async function start() {
  if (location.hash.startsWith("#token=")) { // a finder hand-off: keep the token, drop it from the address bar
    localStorage.setItem(HANDOFF_KEY, decodeURIComponent(location.hash.slice(7)));
    history.replaceState(null, "", location.pathname + location.search);
  }
  const params = new URLSearchParams(location.search);
  const { user, error } = await whoAmI();
  signedIn = !!user || !!error;
  quotaOnLoad(user);
  const saved = JSON.parse(sessionStorage.getItem(RESUME_KEY) || "null");
  const pending = sessionStorage.getItem(PENDING_KEY);
  const welcome = sessionStorage.getItem("sf_welcome");
  sessionStorage.removeItem("sf_welcome");
  if (welcome) notice("You're verified. You now have 10 searches a day.", [], "ok");
  if (saved) {
    input.value = saved.query || ""; answerText = saved.answer || ""; renderSources(saved.sources || []); renderAnswer();
    listen(saved.searchId, saved.lastId, saved.query);
  } else if (params.get("q")) {
    input.value = params.get("q").slice(0, 1000);
    history.replaceState(null, "", location.pathname);
    startSearch(input.value);
  } else if (pending && user) {
    input.value = pending;
    sessionStorage.removeItem(PENDING_KEY);
    if (!welcome) notice("Your question is back in the box: press Search to ask it.", [], "ok");
    input.focus();
  }
}
start();
