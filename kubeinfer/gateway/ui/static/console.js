// kubeinfer web console: the batch page polls its batch's progress and updates the counts in place.
// Values arrive formatted by the server and are set with textContent, never parsed as HTML.
(function () {
  "use strict";
  var section = document.querySelector("[data-progress-url]");
  if (!section) {
    return;
  }
  var url = section.getAttribute("data-progress-url");
  var intervalMs = 1000;

  function show(data) {
    Object.keys(data.fields).forEach(function (field) {
      section.querySelectorAll('[data-field="' + field + '"]').forEach(function (element) {
        element.textContent = data.fields[field];
      });
    });
    section.querySelectorAll("progress").forEach(function (bar) {
      bar.max = data.total || 1;
      bar.value = data.done;
    });
  }

  function fail(message) {
    section.querySelectorAll('[data-field="poll_error"]').forEach(function (element) {
      element.textContent = message;
    });
  }

  function poll() {
    fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin", cache: "no-store" })
      .then(function (response) {
        var type = response.headers.get("content-type") || "";
        if (response.redirected || type.indexOf("application/json") === -1) {
          window.location.reload(); // signed out meanwhile: the page itself leads to the login form
          return null;
        }
        if (!response.ok) {
          fail("progress unavailable (HTTP " + response.status + ")");
          return null;
        }
        return response.json();
      })
      .then(function (data) {
        if (data === null) {
          return;
        }
        show(data);
        if (data.terminal) {
          window.location.reload(); // the finished page has the output and error downloads
        } else {
          window.setTimeout(poll, intervalMs);
        }
      })
      .catch(function () {
        fail("gateway unreachable, retrying");
        window.setTimeout(poll, 3 * intervalMs);
      });
  }

  window.setTimeout(poll, intervalMs);
})();
