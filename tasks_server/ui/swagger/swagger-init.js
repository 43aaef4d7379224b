// Starts Swagger UI on this server's document (a file, not an inline script: the page's CSP
// allows only scripts from the server) and fills both owner security schemes from the form,
// or from the dashboard's sign-in in this tab. Nothing is stored by this page.
"use strict";

(() => {
  const form = document.getElementById("credentials");
  const status = document.getElementById("credentials-status");

  const authorize = (ownerId, key) => {
    window.ui.preauthorizeApiKey("ownerId", ownerId);
    window.ui.preauthorizeApiKey("bearer", key);
    status.textContent = `Requests now carry X-Tasks-Owner-Id ${ownerId} and its key.`;
  };

  const fromDashboard = () => {
    try {
      const saved = JSON.parse(sessionStorage.getItem("tasks-server.credentials") || "null");
      if (saved && saved.ownerId && saved.key) {
        form.elements.ownerId.value = saved.ownerId;
        form.elements.key.value = saved.key;
        authorize(saved.ownerId, saved.key);
      }
    } catch {
      // No usable sign-in: the form stays empty.
    }
  };

  window.ui = SwaggerUIBundle({
    url: new URL("openapi.json", document.baseURI).href,
    dom_id: "#swagger-ui",
    deepLinking: true,
    onComplete: fromDashboard,
  });

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const ownerId = form.elements.ownerId.value.trim();
    const key = form.elements.key.value.trim();
    if (!ownerId || !key) {
      status.textContent = "Give both the owner id and the key.";
      return;
    }
    authorize(ownerId, key);
  });
})();
