import { $, TOKEN_KEY, api, errorText, fetchToken, say } from "/static/app.js";

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const result = await api("POST", "/api/auth/login", { email: $("email").value.trim(), password: $("password").value });
  if (!result.ok) {
    say($("message"), result.status === 429 ? "Too many attempts. Wait a few minutes and try again." : errorText(result));
    return;
  }
  if (!result.data.verified) { location.assign("/account"); return; }
  if (!localStorage.getItem(TOKEN_KEY)) await fetchToken();
  location.assign("/search");
});
