// Live updates of the tracking page: the server sends the re-rendered tracking section whenever
// the order's timeline changes (server-sent events); nothing is computed here.
(function () {
  "use strict";
  var root = document.getElementById("tracking-root");
  var live = document.getElementById("live-status");
  if (!root || !window.EventSource) { return; }
  var source = new EventSource(root.getAttribute("data-stream"));
  // the server sends a document only when it differs from the one shown (?since= the page's)
  source.addEventListener("timeline", function (ev) {
    var data = JSON.parse(ev.data);
    root.innerHTML = data.html;
    var section = document.getElementById("tracking");
    if (section) { section.classList.add("flash"); }
    live.textContent = data.announce;
  });
  source.addEventListener("gone", function () { source.close(); });
  source.addEventListener("open", function () {
    document.documentElement.setAttribute("data-live", "connected");
  });
})();
