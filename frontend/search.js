// The search page: start a search, render the streamed events, resume after reloads, cancel.
const $ = (id) => document.getElementById(id);
const form = $("search-form"), input = $("q"), answerEl = $("answer"), sourcesEl = $("sources");
const quotaEl = $("quota"), noticeEl = $("notice"), stopBtn = $("stop"), modeEl = $("mode");
const TOKEN_KEY = "sf_token", RESUME_KEY = "sf_resume";
let source = null, current = null, answerText = "", sources = [];

function token() { return localStorage.getItem(TOKEN_KEY); }

function notice(text, links = []) {
  noticeEl.replaceChildren(document.createTextNode(text));
  for (const [label, href] of links) {
    noticeEl.append(" ");
    const a = document.createElement("a"); a.href = href; a.textContent = label; noticeEl.append(a);
  }
  noticeEl.hidden = false;
}

function showQuota(q) {
  if (!q) return;
  if (q.limit < 0) { quotaEl.textContent = "Pro: unlimited searches"; return; }
  const kind = q.access_tier === "anonymous" ? "free searches" : "searches today";
  quotaEl.textContent = `${q.remaining} of ${q.limit} ${kind} left`;
}

// Model text is only ever placed with textContent; citations become links to the sources.
function renderAnswer() {
  const parts = answerText.split(/(\[\d{1,2}\]|\*\*[^*]+\*\*)/);
  const nodes = [];
  for (const part of parts) {
    const cite = part.match(/^\[(\d{1,2})\]$/);
    const bold = part.match(/^\*\*([^*]+)\*\*$/);
    if (cite && sources[Number(cite[1]) - 1]) {
      const a = document.createElement("a");
      a.href = `#source-${cite[1]}`; a.className = "cite"; a.textContent = `[${cite[1]}]`;
      nodes.push(a);
    } else if (bold) {
      const b = document.createElement("strong"); b.textContent = bold[1]; nodes.push(b);
    } else if (part) {
      nodes.push(document.createTextNode(part));
    }
  }
  answerEl.replaceChildren(...nodes);
}

function renderSources(results) {
  sources = results;
  sourcesEl.replaceChildren(...results.map((r, i) => {
    const li = document.createElement("li"); li.id = `source-${i + 1}`;
    const a = document.createElement("a"); a.href = r.url; a.textContent = r.title; a.rel = "noopener"; a.target = "_blank";
    const p = document.createElement("p"); p.textContent = r.summary;
    li.append(a, p);
    if (r.services && r.services.length) {
      const s = document.createElement("p"); s.className = "services"; s.textContent = r.services.join(" · "); li.append(s);
    }
    return li;
  }));
}

function finish() {
  if (source) { source.close(); source = null; }
  stopBtn.hidden = true; answerEl.setAttribute("aria-busy", "false");
  sessionStorage.removeItem(RESUME_KEY);
}

function listen(searchId, lastId) {
  current = searchId;
  const url = `/api/searches/${encodeURIComponent(searchId)}/events` + (lastId ? `?last_event_id=${encodeURIComponent(lastId)}` : "");
  source = new EventSource(url);
  stopBtn.hidden = false; answerEl.setAttribute("aria-busy", "true");
  const remember = (e) => sessionStorage.setItem(RESUME_KEY, JSON.stringify({ searchId, lastId: e.lastEventId, query: input.value, answer: answerText, sources }));
  source.addEventListener("sources", (e) => {
    const data = JSON.parse(e.data);
    renderSources(data.results);
    modeEl.hidden = data.answer_mode !== "extractive";
    modeEl.textContent = "Offline answer mode: this answer is assembled from the catalog entries, not written by a language model.";
    if (data.no_match) notice("No matching solution in the catalog for this question.");
    remember(e);
  });
  source.addEventListener("token", (e) => { answerText += JSON.parse(e.data).text; renderAnswer(); remember(e); });
  source.addEventListener("done", (e) => { const d = JSON.parse(e.data); answerText = d.answer; renderAnswer(); finish(); });
  source.addEventListener("error", (e) => {
    if (e.data) {
      const d = JSON.parse(e.data);
      notice(d.reason === "cancelled" ? "Search stopped." : `The search failed: ${d.error}`);
      finish();
    } else if (!navigator.onLine) {
      notice("You are offline; the answer will resume when the connection returns.");
    }
  });
}

async function startSearch(query) {
  noticeEl.hidden = true; answerText = ""; renderAnswer(); renderSources([]);
  answerEl.setAttribute("aria-busy", "true");
  if (source) finish();
  const headers = { "Content-Type": "application/json" };
  if (token()) headers.Authorization = `Bearer ${token()}`;
  let response;
  try {
    response = await fetch("/api/searches", { method: "POST", headers, body: JSON.stringify({ query }), credentials: "same-origin" });
  } catch {
    answerEl.setAttribute("aria-busy", "false");
    notice("You appear to be offline. Check your connection and try again.");
    return;
  }
  const body = await response.json().catch(() => ({}));
  if (response.status !== 202) answerEl.setAttribute("aria-busy", "false");
  if (response.status === 202) {
    showQuota(body.quota);
    listen(body.search_id, null);
  } else if (response.status === 429 && body.reason === "anonymous_limit_exceeded") {
    quotaEl.textContent = `0 of ${body.limit} free searches left`;
    notice("You have used your free searches. Register for 10 searches a day:", [["Register", "/register?solution_id=aws-solution-finder"]]);
  } else if (response.status === 429) {
    quotaEl.textContent = `0 of ${body.limit} searches today left`;
    notice("You have used today's searches. Upgrade to Pro for unlimited searches:", [["Upgrade", "/pricing?solution_id=aws-solution-finder"]]);
  } else if (response.status === 401) {
    localStorage.removeItem(TOKEN_KEY);
    notice("Your access token is no longer valid. Log in to get a new one.", [["Log in", "/login"]]);
  } else if (response.status >= 500) {
    notice("The service is having trouble right now. Please try again in a moment.");
  } else {
    notice(body.error || "The search could not be started.");
  }
}

form.addEventListener("submit", (e) => { e.preventDefault(); const q = input.value.trim(); if (q) startSearch(q); });
stopBtn.addEventListener("click", async () => {
  if (current) await fetch(`/api/searches/${encodeURIComponent(current)}/cancel`, { method: "POST" });
});
window.addEventListener("online", () => { noticeEl.hidden = true; });

const saved = sessionStorage.getItem(RESUME_KEY);
if (saved) {
  const s = JSON.parse(saved);
  input.value = s.query || ""; answerText = s.answer || ""; renderSources(s.sources || []); renderAnswer();
  listen(s.searchId, s.lastId);
}
if (token()) { $("nav-login").hidden = true; } else { $("nav-account").hidden = true; }
