// The monitoring panel works without this: it only makes a field's "query" link open the
// panel's query form on that field instead of the separate page.
document.addEventListener("click", (event) => {
  const link = event.target.closest("a.qraise");
  const select = document.getElementById("query-field");
  if (!link || !select) return;
  const field = new URL(link.href, location.href).searchParams.get("field");
  if (![...select.options].some((o) => o.value === field)) return;
  event.preventDefault();
  select.value = field;
  const text = document.getElementById("query-text");
  text.scrollIntoView({ block: "center" });
  text.focus();
});
