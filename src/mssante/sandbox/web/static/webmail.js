/* Sandbox webmail: live folder updates over server-sent events (no inline script: CSP 'self'). */
(function () {
  "use strict";
  var body = document.body;
  var url = body.getAttribute("data-events");
  if (!url || !window.EventSource) { return; }
  var status = document.getElementById("statut-direct");
  var source = new EventSource(url);

  function list() { return document.getElementById("liste-messages"); }

  function refresh() {
    var el = list();
    if (el && window.htmx) {
      window.htmx.ajax("GET", el.getAttribute("data-src"), { target: "#liste-messages", swap: "outerHTML" });
    }
  }

  function announce(text) { if (status) { status.textContent = text; } }

  source.addEventListener("open", function () {
    body.setAttribute("data-live", "on");
    refresh();  // anything that arrived before the stream opened
  });
  source.addEventListener("error", function () { body.setAttribute("data-live", "off"); });
  source.addEventListener("message", function (event) {
    var data = {};
    try { data = JSON.parse(event.data); } catch (e) { return; }
    var el = list();
    if (el && data.folder === el.getAttribute("data-folder")) {
      refresh();
      // the page gives the words, in its language (data-t-*: catalogue texts)
      announce((body.getAttribute("data-t-new-message") || "") +
               (data.subject || body.getAttribute("data-t-no-subject") || ""));
    }
  });
  source.addEventListener("expunge", function (event) {
    var data = {};
    try { data = JSON.parse(event.data); } catch (e) { return; }
    var el = list();
    if (el && data.folder === el.getAttribute("data-folder")) { refresh(); }
  });
  window.addEventListener("pagehide", function () { source.close(); });
}());
