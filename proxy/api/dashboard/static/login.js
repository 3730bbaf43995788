// Dashboard sign-in: an admin key, or an EIP-4361 message signed by the browser's wallet (EIP-1193).
"use strict";
(function () {
  const MESSAGES = { link_invalid: "That sign-in link is unknown, used or expired; ask for a new one." };

  function showError(text) {
    const p = document.getElementById("error");
    p.textContent = text;
    p.hidden = false;
  }

  async function post(path, body) {
    const response = await fetch(path, { method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    const answer = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error((answer.error && answer.error.message) || `HTTP ${response.status}`);
    return answer;
  }

  async function walletLogin() {
    const provider = window.ethereum;
    if (!provider) throw new Error("no Ethereum wallet in this browser");
    const [address] = await provider.request({ method: "eth_requestAccounts" });
    const challenge = await post("/v1/auth/challenge", { address });
    const hex = "0x" + Array.from(new TextEncoder().encode(challenge.message),
      (b) => b.toString(16).padStart(2, "0")).join("");
    const signature = await provider.request({ method: "personal_sign", params: [hex, address] });
    await post("/dashboard/login/wallet", { address, message: challenge.message, signature });
  }

  document.addEventListener("DOMContentLoaded", () => {
    const code = new URLSearchParams(window.location.search).get("error");
    if (code) showError(MESSAGES[code] || "Sign-in failed.");
    document.getElementById("wallet-login").addEventListener("click", () => {
      walletLogin().then(() => window.location.assign("/dashboard"), (error) => showError(error.message));
    });
    document.getElementById("key-form").addEventListener("submit", (event) => {
      event.preventDefault();
      post("/dashboard/login/key", { admin_token: document.getElementById("admin-token").value })
        .then(() => window.location.assign("/dashboard"), (error) => showError(error.message));
    });
  });
})();
