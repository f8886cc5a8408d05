// The operations board refreshes itself every 15 s (the server shares one read per 5 s).
(function () {
  "use strict";
  var root = document.getElementById("board-root");
  if (!root || !window.fetch) { return; }
  var url = root.getAttribute("data-fragment");
  setInterval(function () {
    fetch(url, { headers: { "Accept": "text/html" } })
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
      .then(function (html) { root.innerHTML = html; })
      .catch(function () { /* keep the last board */ });
  }, 15000);
  var form = document.querySelector("form.filters");
  if (form) {
    Array.prototype.forEach.call(form.querySelectorAll("select"), function (s) {
      s.addEventListener("change", function () { form.submit(); });
    });
  }
})();
