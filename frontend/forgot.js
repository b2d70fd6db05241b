// Forgotten password: ask for a code by mail, then set a new password with it, then log in.
import { $, api, errorText, passwordHint, say } from "/static/app.js";

const message = $("message");
let email = "";
passwordHint($("new-password"), $("password-hint"));

async function sendCode() {
  const result = await api("POST", "/api/auth/password/forgot", { email });
  if (!result.ok) { say(message, errorText(result)); return false; }
  say(message, "");
  return true;
}

$("forgot-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  email = $("email").value.trim();
  if (!$("email").checkValidity()) { say(message, "Enter your email address, like name@example.com."); return; }
  if (!(await sendCode())) return;
  $("forgot-form").hidden = true;
  $("reset-form").hidden = false;
  $("sent-to").textContent = email;
  $("code").focus();
});

$("reset-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const code = $("code").value.trim(), password = $("new-password").value;
  if (!/^\d{6}$/.test(code)) { say(message, "The code is the 6 digits in the email we sent."); $("code").focus(); return; }
  if (password.length < 10) { say(message, "Choose a password of at least 10 characters."); $("new-password").focus(); return; }
  const result = await api("POST", "/api/auth/password/reset", { email, code, new_password: password });
  if (!result.ok) { say(message, errorText(result), "bad"); return; }
  location.assign("/login?why=reset");
});

$("again").addEventListener("click", async () => {
  if (await sendCode()) say(message, "Another code is on its way.", "ok");
});
