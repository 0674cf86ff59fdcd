// courier console: the destination form shows only the fields of the authentication
// type picked (without this script every field shows; the server reads only the type's).
(function () {
  "use strict";
  var picker = document.getElementById("auth_type");
  if (!picker) return;
  function show() {
    document.querySelectorAll(".auth-kind").forEach(function (el) {
      el.hidden = el.getAttribute("data-auth") !== picker.value;
    });
  }
  picker.addEventListener("change", show);
  show();
})();

// courier console: live updates. Every page works without this script; with it, the
// regions marked data-live are re-rendered by the server whenever the tenant's
// lifecycle-event stream (/console/events) reports a change, at most once a second.
(function () {
  "use strict";
  var source = document.body.getAttribute("data-live-stream");
  var status = document.getElementById("live-status");
  if (!source || !document.querySelector("[data-live]") || !window.EventSource) return;
  var MIN_GAP_MS = 1000, FALLBACK_POLL_MS = 10000;
  var timer = null, last = 0, busy = false;

  async function refresh() {
    timer = null;
    if (busy) { schedule(); return; }
    busy = true;
    last = Date.now();
    try {
      var res = await fetch(location.href, { credentials: "same-origin", headers: { "X-Console-Live": "1" } });
      if (!res.ok || res.redirected) return;
      var doc = new DOMParser().parseFromString(await res.text(), "text/html");
      document.querySelectorAll("[data-live]").forEach(function (el) {
        var fresh = el.id && doc.getElementById(el.id);
        if (fresh) el.replaceWith(document.importNode(fresh, true));
      });
      document.body.setAttribute("data-refreshed", String(Date.now()));
    } catch (e) {
      /* the next event or poll tries again */
    } finally {
      busy = false;
    }
  }

  function schedule() {
    if (timer !== null) return;
    timer = setTimeout(refresh, Math.max(0, MIN_GAP_MS - (Date.now() - last)));
  }

  var stream = new EventSource(source);
  stream.onopen = function () { if (status) status.textContent = "live"; };
  stream.onmessage = schedule;
  stream.onerror = function () { if (status) status.textContent = "reconnecting…"; };
  setInterval(schedule, FALLBACK_POLL_MS);  // times ("in 3 minutes") and missed events
})();
