// kubeinfer web console: live updates of a running batch and of ModelInstalls, and upload forms.
// Values arrive formatted by the server and are set with textContent, never parsed as HTML.
(function () {
  "use strict";

  // Poll `url` every `intervalMs`; `show(data)` returns true to keep polling. A redirect or a non-JSON
  // answer means the session ended meanwhile: reloading leads to the login form.
  function poll(url, intervalMs, show, fail) {
    function again(delay) {
      window.setTimeout(tick, delay);
    }
    function tick() {
      fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin", cache: "no-store" })
        .then(function (response) {
          var type = response.headers.get("content-type") || "";
          if (response.redirected || type.indexOf("application/json") === -1) {
            window.location.reload();
            return null;
          }
          if (!response.ok) {
            fail("updates unavailable (HTTP " + response.status + "), retrying");
            again(3 * intervalMs);
            return null;
          }
          return response.json();
        })
        .then(function (data) {
          if (data === null) {
            return;
          }
          fail("");
          if (show(data)) {
            again(intervalMs);
          }
        })
        .catch(function () {
          fail("gateway unreachable, retrying");
          again(3 * intervalMs);
        });
    }
    again(intervalMs);
  }

  function setFields(root, fields) {
    Object.keys(fields).forEach(function (field) {
      root.querySelectorAll('[data-field="' + field + '"]').forEach(function (element) {
        element.textContent = fields[field];
      });
    });
  }

  function messenger(root) {
    return function (message) {
      root.querySelectorAll('[data-field="poll_error"]').forEach(function (element) {
        element.textContent = message;
      });
    };
  }

  // A running batch's counts; the finished page (output and error downloads) is loaded when it ends.
  var batch = document.querySelector("[data-progress-url]");
  if (batch) {
    poll(batch.getAttribute("data-progress-url"), 1000, function (data) {
      setFields(batch, data.fields);
      batch.querySelectorAll("progress").forEach(function (bar) {
        bar.max = data.total || 1;
        bar.value = data.done;
      });
      if (data.terminal) {
        window.location.reload();
        return false;
      }
      return true;
    }, messenger(batch));
  }

  // ModelInstalls: each row's phase, download progress, size, serving state and message.
  var installs = document.querySelector("[data-installs-url]");
  if (installs) {
    poll(installs.getAttribute("data-installs-url"), 2000, function (data) {
      var shown = installs.querySelectorAll("tr[data-install]");
      if (shown.length !== data.installs.length) {
        window.location.reload(); // an install was created or deleted elsewhere
        return false;
      }
      data.installs.forEach(function (item) {
        var row = null;
        shown.forEach(function (candidate) {
          if (candidate.getAttribute("data-install") === item.name) {
            row = candidate;
          }
        });
        if (row === null) {
          return;
        }
        setFields(row, item.fields);
        row.querySelectorAll('[data-field="phase"]').forEach(function (badge) {
          badge.className = ("badge " + item.phase_class).trim();
        });
      });
      return true;
    }, messenger(installs.parentNode));
  }

  // Upload forms are sent with fetch so that every refusal is shown on the page, the gateway's own 413
  // for a body over its limit (a JSON answer in the API's shape, sent before the console sees the request)
  // included. Without script the forms still post as usual.
  function showUploadError(form, message) {
    form.querySelectorAll('[data-error="upload"]').forEach(function (element) {
      element.textContent = message;
      element.hidden = false;
    });
  }

  function showPage(html) {
    var fresh = new DOMParser().parseFromString(html, "text/html");
    document.title = fresh.title;
    document.body.replaceWith(document.adoptNode(fresh.body));
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.hasAttribute("data-upload-form")) {
      return;
    }
    event.preventDefault();
    var button = form.querySelector("button[type=submit]");
    if (button) {
      button.disabled = true;
    }
    fetch(form.action, { method: "POST", body: new FormData(form), credentials: "same-origin" })
      .then(function (response) {
        var type = response.headers.get("content-type") || "";
        if (response.redirected) {
          window.location.assign(response.url);
          return null;
        }
        if (type.indexOf("application/json") !== -1) {
          return response.json().then(function (body) {
            var error = (body && body.error) || {};
            var param = error.param ? error.param + ": " : "";
            showUploadError(form, param + (error.message || "the gateway refused the upload (HTTP " + response.status + ")"));
          });
        }
        return response.text().then(showPage);
      })
      .catch(function (error) {
        showUploadError(form, "the upload did not reach the gateway: " + error.message);
      })
      .finally(function () {
        if (button) {
          button.disabled = false;
        }
      });
  });
})();
