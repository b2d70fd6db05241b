import { $, api, errorText, fetchToken, say } from "/static/app.js";

const params = new URLSearchParams(location.search);
const solutionId = params.get("solution_id") || "aws-solution-finder";
const message = $("message");
let email = "";

$("register-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  email = $("email").value.trim();
  const result = await api("POST", "/api/auth/register", { email, password: $("password").value, name: $("name").value.trim() });
  if (!result.ok) {
    say(message, result.status === 409 ? "That email already has an account. Log in instead." : errorText(result), "notice");
    return;
  }
  $("register-form").hidden = true;
  $("verify-form").hidden = false;
  $("sent-to").textContent = email;
  say(message, "");
  $("code").focus();
});

$("verify-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const result = await api("POST", "/api/auth/verify", { email, code: $("code").value.trim() });
  if (!result.ok) { say(message, errorText(result)); return; }
  const token = await fetchToken(solutionId);
  if (!token.ok) { say(message, errorText(token)); return; }
  // Back to the search page, which reads the fresh token from localStorage (never from the URL).
  location.assign("/search");
});

$("resend").addEventListener("click", async () => {
  const result = await api("POST", "/api/auth/resend-code", { email });
  say(message, result.ok ? "A new code is on its way." : errorText(result));
});
