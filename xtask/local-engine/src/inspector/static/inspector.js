// The inspector's only script: filters a table's rows as you type, and refreshes the pipeline page.
document.querySelectorAll("input[data-filter]").forEach(function (input) {
  var rows = document.querySelectorAll(input.dataset.filter + " tbody tr");
  input.addEventListener("input", function () {
    var words = input.value.toLowerCase().split(/\s+/).filter(Boolean);
    rows.forEach(function (row) {
      var text = (row.dataset.search || row.textContent).toLowerCase();
      row.hidden = !words.every(function (w) { return text.indexOf(w) >= 0; });
    });
  });
});
// A long replay goes on in the engine after the page is shown: reload until it is there.
if (document.getElementById("replay-running")) {
  setTimeout(function () { location.reload(); }, 1500);
}
if (document.body.dataset.page === "pipeline" && !location.search.includes("refresh=off")) {
  setTimeout(function () { location.reload(); }, 5000);
}
