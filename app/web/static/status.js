// Refreshes the tiles in place: polls the page's small JSON of states and updates each tile's
// class and text. Without JavaScript the page is complete as served (reload to refresh).
"use strict";
(function () {
  window.statusScriptRan = true;  // a marker the browser test reads
  var board = document.getElementById("board");
  if (!board || !window.fetch) return;
  var url = board.getAttribute("data-tiles");
  var every = Math.max(1, Number(board.getAttribute("data-refresh-s")) || 30) * 1000;
  function apply(data) {
    data.monitors.forEach(function (m) {
      var tile = board.querySelector('li.tile[data-slug="' + CSS.escape(m.slug) + '"]');
      if (!tile) return;
      tile.className = "tile state-" + m.state;
      tile.querySelector(".state-text").textContent = m.state;
      if (m.checked) tile.querySelector(".checked").textContent = "checked " + m.checked;
    });
    var overall = document.getElementById("overall");
    if (overall && data.overall) {
      overall.className = "overall state-" + data.overall[0];
      overall.textContent = data.overall[1];
    }
    var last = document.getElementById("last-check");
    if (last && data.last_checked) last.textContent = data.last_checked;
  }
  function poll() {
    fetch(url, { headers: { Accept: "application/json" }, cache: "no-store" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) { if (data) apply(data); })
      .catch(function () {})  // offline for a moment: try again at the next tick
      .then(function () { setTimeout(poll, every); });
  }
  setTimeout(poll, every);
})();
