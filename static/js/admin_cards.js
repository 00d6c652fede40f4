// Top-up cards page: "select all" checkbox and reopening a dialog that came back with errors.
document.addEventListener("change", (event) => {
  const all = event.target.closest("[data-select-all]");
  if (!all) return;
  const name = all.dataset.selectAll;
  all.closest("table").querySelectorAll(`input[type=checkbox][name="${name}"]`)
    .forEach((box) => { box.checked = all.checked; });
});

function showPendingDialogs() {
  document.querySelectorAll("dialog[data-autoshow]").forEach((dialog) => {
    dialog.removeAttribute("data-autoshow");
    if (!dialog.open) dialog.showModal();
  });
}
document.addEventListener("DOMContentLoaded", showPendingDialogs);
document.addEventListener("htmx:afterSettle", showPendingDialogs);
