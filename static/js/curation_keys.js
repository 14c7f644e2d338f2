// Keys on a curation entry: a accepts, r rejects, n goes to the next entry without deciding. Ignored while
// typing in a field; a decision without its note stops at the browser's "fill in this field".
(function () {
  const form = document.getElementById("review");
  document.addEventListener("keydown", (event) => {
    if (event.altKey || event.ctrlKey || event.metaKey || event.target.closest("input, textarea, select")) return;
    if (event.key === "a" || event.key === "r") {
      event.preventDefault();
      form.querySelector(`button[value=${event.key === "a" ? "accept" : "reject"}]`).click();
    } else if (event.key === "n") {
      const next = document.getElementById("next-item");
      if (next) window.location.href = next.href;
    }
  });
})();
