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

// Mass Edit and Delete say exactly how many cards they act on: the ticked rows, else the search.
function describeMassEditScope() {
  const scope = document.getElementById("mass-edit-scope");
  if (!scope) return;
  const selected = document.querySelectorAll('input[type=checkbox][name="card_id"]:checked').length;
  const count = selected || Number(scope.dataset.total);
  // The wording comes translated from the page (data-cards-one etc.), numbers in its language.
  const number = count.toLocaleString(document.documentElement.lang === "en" ? "en-GB" : document.documentElement.lang);
  const form = count === 1 ? "one" : "other";
  const cards = scope.dataset[`cards${form === "one" ? "One" : "Other"}`].replace("{count}", number);
  const text = selected
    ? scope.dataset.selected.replace("{cards}", cards)
    : scope.dataset[`all${form === "one" ? "One" : "Other"}`].replace("{count}", number);
  const dialog = scope.closest("dialog");
  dialog.querySelectorAll("[data-scope-text]").forEach((el) => { el.textContent = text; });
  dialog.querySelectorAll("[data-scope-count]").forEach((el) => { el.textContent = cards; });
}
document.addEventListener("change", describeMassEditScope);
document.addEventListener("click", (event) => {
  if (event.target.closest('[data-open-dialog="mass-edit-dialog"]')) describeMassEditScope();
});
