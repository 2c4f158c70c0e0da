// Polls a job's status and updates the progress bar; reloads when the job ends so the
// page can show its result. No inline script: the Content-Security-Policy forbids it.
(function () {
  "use strict";
  var box = document.getElementById("job");
  if (!box) return;
  var url = box.getAttribute("data-status-url");
  function poll() {
    fetch(url, { credentials: "same-origin" }).then(function (r) { return r.json(); }).then(function (s) {
      document.getElementById("job-label").textContent = s.label;
      document.getElementById("job-message").textContent = s.message || "";
      document.getElementById("job-progress").value = s.percent;
      if (s.total) document.getElementById("job-count").textContent = s.done + " of " + s.total;
      if (s.finished) { if (box.getAttribute("data-finished") !== "1") window.location.reload(); return; }
      setTimeout(poll, 1000);
    }).catch(function () { setTimeout(poll, 3000); });
  }
  if (!document.getElementById("job-error").hidden || !document.getElementById("job-download").hidden) {
    box.setAttribute("data-finished", "1");
    return;
  }
  poll();
})();
