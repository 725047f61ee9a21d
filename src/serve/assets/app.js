// dane-audit serve: progressive enhancement only. Every page works without
// this script (a page in progress reloads itself, records can be selected
// and copied by hand); with it, results appear as they arrive and each
// suggested record gets a working copy button. No inline code anywhere:
// the Content-Security-Policy allows scripts from this origin only.
"use strict";

(function () {
  var KINDS = { step: 1, ok: 1, problem: 1, skipped: 1 };

  function announce(text) {
    var live = document.getElementById("announce");
    if (!live) return;
    live.textContent = "";
    window.setTimeout(function () { live.textContent = text; }, 50);
  }

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    // Plain http on another host: the old way, through a hidden field.
    return new Promise(function (resolve, reject) {
      var area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.className = "visually-hidden";
      document.body.appendChild(area);
      area.select();
      var ok = false;
      try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
      document.body.removeChild(area);
      if (ok) { resolve(); } else { reject(new Error("copy refused")); }
    });
  }

  function wireCopyButtons(root) {
    var buttons = root.querySelectorAll("button.copy");
    Array.prototype.forEach.call(buttons, function (b) {
      if (b.dataset.wired) return;
      b.dataset.wired = "1";
      b.hidden = false;
      b.addEventListener("click", function () {
        var text = b.getAttribute("data-copy") || "";
        var label = b.querySelector(".label") || b;
        copyText(text).then(function () {
          label.textContent = "Copied";
          announce("Copied: " + text);
          window.setTimeout(function () { label.textContent = "Copy"; }, 2000);
        }, function () {
          announce("Copying failed: select the record and copy it by hand");
        });
      });
    });
  }

  function addLine(list, line) {
    var li = document.createElement("li");
    li.className = "k-" + (KINDS[line.kind] ? line.kind : "step");
    li.textContent = line.text;
    list.appendChild(li);
  }

  // The audit finished: fetch this page again (now the report) and swap
  // its content in, then move focus to the verdict.
  function showReport() {
    fetch(window.location.href, { headers: { Accept: "text/html" }, credentials: "same-origin" })
      .then(function (r) { return r.text(); })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.querySelector("main");
        var main = document.querySelector("main");
        if (!fresh || !main) { window.location.reload(); return; }
        if (fresh.hasAttribute("data-events")) { window.setTimeout(showReport, 1000); return; }
        main.replaceWith(document.importNode(fresh, true));
        document.title = doc.title;
        var now = document.querySelector("main");
        wireCopyButtons(now);
        var h = document.getElementById("verdict-h") || now.querySelector("h1");
        if (h) {
          if (!h.hasAttribute("tabindex")) h.setAttribute("tabindex", "-1");
          h.focus();
          announce(h.textContent.replace(/\s+/g, " ").trim());
        }
      })
      .catch(function () { window.location.reload(); });
  }

  function followProgress(main) {
    var url = main.getAttribute("data-events");
    var list = document.getElementById("progress");
    if (!url || !list || !window.EventSource) {
      window.setTimeout(function () { window.location.reload(); }, 3000);
      return;
    }
    var source = new EventSource(url);
    source.addEventListener("line", function (e) {
      try { addLine(list, JSON.parse(e.data)); } catch (err) { /* ignore a bad line */ }
    });
    source.addEventListener("done", function () {
      source.close();
      showReport();
    });
    source.onerror = function () {
      if (source.readyState === EventSource.CLOSED) {
        window.setTimeout(function () { window.location.reload(); }, 3000);
      }
    };
  }

  function start() {
    wireCopyButtons(document);
    var main = document.querySelector("main[data-events]");
    if (main) followProgress(main);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
