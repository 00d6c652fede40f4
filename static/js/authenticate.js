// 3-D Secure: Stripe.js shows the bank's confirmation for a PaymentIntent that needs it;
// afterwards our server asks Stripe how it ended (the browser's word is never taken).
(function () {
  "use strict";

  let loading = null;
  function loadStripe(src) {
    if (typeof Stripe !== "undefined") return Promise.resolve();
    if (!loading) {
      loading = new Promise((resolve, reject) => {
        const script = document.createElement("script");
        script.src = src;
        script.onload = resolve;
        script.onerror = reject;
        document.head.appendChild(script);
      });
    }
    return loading;
  }

  function mount(box) {
    if (box.dataset.mounted) return;
    box.dataset.mounted = "1";
    const button = box.querySelector("[data-authenticate-start]");
    const done = box.querySelector("[data-authenticate-done]");
    const errors = box.querySelector("[data-authenticate-errors]");
    button.addEventListener("click", async () => {
      button.disabled = true;
      button.setAttribute("aria-busy", "true");
      errors.textContent = "";
      try {
        await loadStripe(box.dataset.stripeJs);
        const stripe = Stripe(box.dataset.publishableKey);
        const result = await stripe.confirmCardPayment(box.dataset.clientSecret);
        if (result.error && result.error.message) errors.textContent = result.error.message;
      } catch (err) {
        errors.textContent = box.dataset.unreachable || "The payment service could not be reached. Please try again.";
        button.disabled = false;
        button.removeAttribute("aria-busy");
        return;
      }
      // Our server asks Stripe how it ended; the page shows the outcome.
      done.submit();
    });
  }

  function scan(root) {
    if (!root || !root.querySelectorAll) return;
    if (root.matches && root.matches("[data-authenticate]")) mount(root);
    root.querySelectorAll("[data-authenticate]").forEach(mount);
  }

  document.addEventListener("DOMContentLoaded", () => scan(document));
  document.addEventListener("htmx:load", (event) => scan(event.detail.elt));
})();
