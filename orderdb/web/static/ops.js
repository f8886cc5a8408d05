// The operations board refreshes its data region (#board-root) in place every data-refresh-ms
// (15 s by default; the server shares one read per 5 s among all viewers).
// WCAG 2.2.2 Pause, Stop, Hide: the "Pause auto-refresh" toggle button (aria-pressed) stops it
// until pressed again. A refresh keeps what the user was doing: the focused element (by its id;
// the board itself if that element is gone), the page's scroll position and each lane's, and it
// waits while text on the board is selected or the tab is hidden. Nothing here animates or
// scrolls on its own. The filters submit with their button only.
(function () {
  "use strict";
  var root = document.getElementById("board-root");
  var toggle = document.getElementById("refresh-toggle");
  var state = document.getElementById("refresh-state");
  if (!root || !toggle || !state || !window.fetch) { return; }
  var url = root.getAttribute("data-fragment");
  var every = parseInt(root.getAttribute("data-refresh-ms"), 10) || 15000;
  var paused = false;
  var busy = false;
  var timer = null;
  var refreshes = 0;

  function seconds() {
    return String(Math.round(every / 100) / 10);
  }

  function describe() {
    state.textContent = paused
      ? "Auto-refresh is paused: the figures stay as read. Press the button again to resume."
      : "The figures refresh every " + seconds() + " s without moving the page or the focus.";
  }

  function schedule() {
    window.clearTimeout(timer);
    timer = paused ? null : window.setTimeout(refresh, every);
  }

  function selecting() {
    var sel = window.getSelection ? window.getSelection() : null;
    return !!(sel && !sel.isCollapsed && sel.anchorNode && root.contains(sel.anchorNode));
  }

  function replace(html) {
    var active = document.activeElement;
    var focusInside = !!active && active !== document.body && root.contains(active);
    var focusId = focusInside ? active.id : "";
    var x = window.scrollX;
    var y = window.scrollY;
    var scrolled = [];
    Array.prototype.forEach.call(root.querySelectorAll("[id]"), function (el) {
      if (el.scrollTop || el.scrollLeft) { scrolled.push([el.id, el.scrollLeft, el.scrollTop]); }
    });
    root.innerHTML = html;
    scrolled.forEach(function (s) {
      var el = document.getElementById(s[0]);
      if (el && root.contains(el)) { el.scrollLeft = s[1]; el.scrollTop = s[2]; }
    });
    if (focusInside) {
      var target = focusId ? document.getElementById(focusId) : null;
      if (!target || !root.contains(target)) { target = document.getElementById("board"); }
      if (target) { target.focus({ preventScroll: true }); }
    }
    window.scrollTo(x, y);
    refreshes += 1;
    root.setAttribute("data-refreshes", String(refreshes));
  }

  function refresh() {
    if (paused || busy) { return; }
    if (document.hidden || selecting()) { schedule(); return; }
    busy = true;
    fetch(url, { headers: { "Accept": "text/html" }, cache: "no-store" })
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
      .then(function (html) { if (!paused) { replace(html); } })
      .catch(function () { /* keep the last board */ })
      .then(function () { busy = false; schedule(); });
  }

  toggle.addEventListener("click", function () {
    paused = !paused;
    toggle.setAttribute("aria-pressed", paused ? "true" : "false");
    root.setAttribute("data-paused", paused ? "true" : "false");
    describe();
    if (paused) { schedule(); } else { refresh(); }
  });
  document.addEventListener("visibilitychange", function () {
    if (!document.hidden && !paused && !busy) { refresh(); }
  });

  toggle.hidden = false;
  root.setAttribute("data-paused", "false");
  describe();
  schedule();
})();
