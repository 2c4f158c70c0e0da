// Polls a running job's status and updates the progress bar; reloads once when the job ends so
// the page can show its result. A finished job's page (data-finished="1", set by the server)
// never polls: it used to reload itself about five times a second when the job had neither a
// file nor an error to show. While the job runs, polls back off from 1 s to 10 s.
// No inline script: the Content-Security-Policy forbids it.
(function () {
  "use strict";
  var box = document.getElementById("job");
  if (!box || box.getAttribute("data-finished") === "1") return;
  var url = box.getAttribute("data-status-url");
  var delay = 1000;
  function later(ms) {
    setTimeout(poll, ms);
    delay = Math.min(Math.round(delay * 1.5), 10000);
  }
  function poll() {
    fetch(url, { credentials: "same-origin" }).then(function (r) { return r.json(); }).then(function (s) {
      document.getElementById("job-label").textContent = s.label;
      document.getElementById("job-message").textContent = s.message || "";
      document.getElementById("job-progress").value = s.percent;
      if (s.total) document.getElementById("job-count").textContent = s.done + " of " + s.total;
      if (s.finished) { window.location.reload(); return; }
      later(delay);
    }).catch(function () { later(Math.max(delay, 3000)); });
  }
  later(delay);
})();
