// Shared helpers for the pages: JSON calls with the CSRF header, the nav, and messages in words.
export const $ = (id) => document.getElementById(id);
export const TOKEN_KEY = "sf_token";

function cookie(name) {
  const match = document.cookie.split("; ").find((c) => c.startsWith(name + "="));
  return match ? decodeURIComponent(match.slice(name.length + 1)) : "";
}

export async function csrf() {
  if (!cookie("csrftoken")) await fetch("/api/auth/csrf", { credentials: "same-origin" });
  return cookie("csrftoken");
}

export async function api(method, path, body) {
  const headers = { "X-CSRFToken": await csrf() };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, { method, headers, credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    return { ok: false, status: 0, data: { error: "You appear to be offline. Check your connection and try again." } };
  }
  const data = response.status === 204 ? {} : await response.json().catch(() => ({}));
  return { ok: response.ok, status: response.status, data };
}

export function say(el, text, kind = "notice") {
  el.className = kind;
  el.textContent = text;
  el.hidden = !text;
}

export function errorText(result) {
  if (result.status === 0) return result.data.error;
  if (result.status >= 500) return "The service is having trouble right now. Please try again in a moment.";
  const detail = Array.isArray(result.data.detail) ? result.data.detail.map((d) => d.message).join("; ") : "";
  return (result.data.error || "That did not work.") + (detail ? ` (${detail})` : "");
}

export function rupees(paise) {
  return "₹" + (paise / 100).toLocaleString("en-IN", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
}

export function el(tag, text, attrs = {}) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}

export async function signedIn() {
  const response = await fetch("/api/me", { credentials: "same-origin" });
  return response.ok ? response.json() : null;
}

// A fresh solution token for the search page, kept only in this origin's localStorage, never in a URL.
export async function fetchToken(solutionId = "aws-solution-finder") {
  const result = await api("POST", "/api/generate-solution-token", { solution_id: solutionId });
  if (result.ok) localStorage.setItem(TOKEN_KEY, result.data.token);
  return result;
}
