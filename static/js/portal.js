// Small behaviours that need script; no inline script anywhere (the CSP forbids it).
document.addEventListener("click", (event) => {
  const opener = event.target.closest("[data-open-dialog]");
  if (opener) {
    document.getElementById(opener.dataset.openDialog)?.showModal();
  }
  const closer = event.target.closest("[data-close-dialog]");
  if (closer) {
    closer.closest("dialog")?.close();
  }
});
// Toasts fade out by CSS; remove them afterwards so they do not pile up.
document.addEventListener("animationend", (event) => {
  if (event.target.classList?.contains("toast")) event.target.remove();
});
// The main menu: always open beside the page on wide screens, a folded "Menu" on phones.
(() => {
  const narrow = window.matchMedia("(max-width: 768px)");
  const fold = () => {
    document.querySelectorAll("details.nav-menu").forEach((menu) => { menu.open = !narrow.matches; });
  };
  document.addEventListener("DOMContentLoaded", fold);
  narrow.addEventListener("change", fold);
})();
// After an HTMX swap, keyboard and screen-reader users land on the result: the first message in
// the new content (an alert or status), else the swapped region. Focus that is still on a live
// element (typing in a search box, a button that stayed) is left where it is, unless a form was
// submitted and answered with a message.
document.addEventListener("htmx:afterSettle", (event) => {
  const { target, requestConfig } = event.detail;
  // Only swaps a person asked for: polling and refreshes sent by the page never move focus.
  if (!requestConfig?.triggeringEvent?.isTrusted) return;
  const region = (target && document.contains(target)) ? target
    : (target?.id && document.getElementById(target.id));
  if (!region) return;
  const message = region.querySelector('[data-focus-after-swap], [role=alert], [role=status], .alert, .field-error');
  const active = document.activeElement;
  const focusStayed = active && active !== document.body && document.contains(active);
  const submitted = requestConfig?.elt?.tagName === "FORM";
  if (focusStayed && !(submitted && message)) return;
  const destination = message || region;
  if (!destination.matches("a[href], button, input, select, textarea, [tabindex]")) {
    destination.setAttribute("tabindex", "-1");
  }
  destination.focus();
});
