/* « Conformité » page: follow the conformance run events live and redraw the results (CSP 'self'). */
(function () {
  "use strict";
  var body = document.body;
  var url = body.getAttribute("data-conformance-events");
  var fragment = body.getAttribute("data-conformance-fragment");
  if (!url || !fragment || !window.EventSource) { return; }
  var status = document.getElementById("statut-conformite");
  var source = new EventSource(url);
  var pending = false;
  var words = {};  // the page's words in its language: status and verdict labels, "Run over: "
  try { words = JSON.parse(body.getAttribute("data-t") || "{}"); } catch (e) { words = {}; }
  function word(key, fallback) { return Object.prototype.hasOwnProperty.call(words, key) ? words[key] : fallback; }

  function redraw() {
    if (pending || !window.htmx) { return; }
    pending = true;
    window.htmx.ajax("GET", fragment, { target: "#conformite", swap: "outerHTML" }).then(function () {
      pending = false;
    }, function () { pending = false; });
  }

  source.addEventListener("open", function () { body.setAttribute("data-live", "on"); });
  source.addEventListener("error", function () { body.setAttribute("data-live", "off"); });
  ["run", "case", "step", "verdict"].forEach(function (kind) {
    source.addEventListener(kind, function (event) {
      var data = {};
      try { data = JSON.parse(event.data); } catch (e) { return; }
      if (status && kind === "verdict") { status.textContent = word("case", "") + data.case + word("colon", ": ") + word(data.status, data.status_fr); }
      redraw();
    });
  });
  source.addEventListener("end", function (event) {
    var data = {};
    try { data = JSON.parse(event.data); } catch (e) { return; }
    if (status) { status.textContent = word("over", "") + word(data.verdict, data.verdict); }
    redraw();
    window.setTimeout(redraw, 1500);  /* the report files are written just after the end event */
  });
  window.addEventListener("pagehide", function () { source.close(); });
}());
