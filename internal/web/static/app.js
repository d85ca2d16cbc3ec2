// segsync: small progressive enhancements. Every page works without them.
(function () {
  "use strict";
  var csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";
  var fmt = function (n) { return Number(n || 0).toLocaleString("en-US"); };

  // Live member count of the segment rule builder.
  document.querySelectorAll("form[data-livecount]").forEach(function (form) {
    var out = document.querySelector("[data-count]");
    var note = document.querySelector("[data-count-note]");
    var box = document.querySelector(".livecount");
    if (!out) return;
    var timer = null, seq = 0;
    var update = function () {
      var mine = ++seq;
      if (box) box.setAttribute("aria-busy", "true");
      fetch(form.getAttribute("data-livecount"), {
        method: "POST", credentials: "same-origin",
        headers: { "Accept": "application/json", "Content-Type": "application/x-www-form-urlencoded", "X-CSRF-Token": csrf },
        body: new URLSearchParams(new FormData(form))
      }).then(function (r) { return r.json(); }).then(function (j) {
        if (mine !== seq) return;
        if (box) box.removeAttribute("aria-busy");
        var errs = j.errors ? Object.values(j.errors) : [];
        if (j.problem) errs.push(j.problem);
        if (typeof j.count === "number" && errs.length === 0) {
          out.textContent = j.count_text || fmt(j.count);
          if (note) note.textContent = j.count === 1 ? "profile matches right now" : "profiles match right now";
        } else {
          out.textContent = "–";
          if (note) note.textContent = errs[0] || "Complete the conditions to see the count";
        }
      }).catch(function () { if (box) box.removeAttribute("aria-busy"); });
    };
    var schedule = function () { clearTimeout(timer); timer = setTimeout(update, 350); };
    form.addEventListener("input", schedule);
    form.addEventListener("change", schedule);
    update();
  });

  // Choosing another connection loads its audiences.
  document.querySelectorAll("select[data-autosubmit]").forEach(function (sel) {
    sel.addEventListener("change", function () {
      var btn = document.getElementById(sel.getAttribute("data-autosubmit"));
      if (btn && sel.form.requestSubmit) sel.form.requestSubmit(btn);
    });
  });
  // The audience picker's "other" shows the typed-ID field.
  document.querySelectorAll("select[data-other]").forEach(function (sel) {
    var other = document.getElementById(sel.getAttribute("data-other"));
    var sync = function () { if (other) other.hidden = sel.value !== "other"; };
    sel.addEventListener("change", sync);
    sync();
  });

  // Live progress of a run.
  var run = document.querySelector("[data-run-poll]");
  if (run) {
    var url = run.getAttribute("data-run-poll");
    var bar = run.querySelector("[data-progress-bar]");
    var text = run.querySelector("[data-progress-text]");
    var pct = run.querySelector("[data-progress-pct]");
    var status = document.querySelector("[data-run-status]");
    var poll = function () {
      fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
        .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
        .then(function (j) {
          var p = j.progress || {}, done = p.done || 0, total = p.total || 0;
          var percent = total > 0 ? Math.min(100, Math.floor(done * 100 / total)) : 0;
          if (bar) { bar.value = percent; bar.textContent = percent + "%"; }
          if (pct) pct.textContent = percent + "%";
          if (text) text.textContent = total > 0 ? fmt(done) + " of " + fmt(total) + " contacts" : "Planning…";
          Object.keys(j.counts || {}).forEach(function (k) {
            var el = document.querySelector('[data-count-key="' + k + '"]');
            if (el) el.textContent = fmt(j.counts[k]);
          });
          if (status) { status.textContent = j.status.replace(/_/g, " ").replace(/^./, function (c) { return c.toUpperCase(); }); status.className = "badge " + j.status; }
          if (j.status === "queued" || j.status === "running") setTimeout(poll, 1000);
          else setTimeout(function () { window.location.reload(); }, 400);
        })
        .catch(function () { setTimeout(poll, 3000); });
    };
    setTimeout(poll, 800);
  }
})();
