// Small progressive enhancements; every page works without them.
(function () {
  "use strict";

  // ← / → step to the older / newer clip on a clip page.
  document.addEventListener("keydown", function (e) {
    if (e.target && /^(INPUT|SELECT|TEXTAREA)$/.test(e.target.tagName)) return;
    var link = e.key === "ArrowLeft" ? document.getElementById("prev")
             : e.key === "ArrowRight" ? document.getElementById("next") : null;
    if (link) { window.location.href = link.href; }
  });

  // "Older clips" appends the next page in place (same origin, same HTML) instead of navigating.
  document.addEventListener("click", function (e) {
    var link = e.target.closest ? e.target.closest(".more a[rel=next]") : null;
    if (!link) return;
    e.preventDefault();
    link.classList.add("disabled");
    fetch(link.href, { credentials: "same-origin" })
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.text(); })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        var more = link.closest(".more");
        var days = document.querySelectorAll("main section.day");
        var last = days[days.length - 1];
        doc.querySelectorAll("main section.day").forEach(function (day) {
          var title = day.querySelector("h2").textContent;
          if (last && last.querySelector("h2").textContent === title) {
            day.querySelectorAll("ul.clips > li").forEach(function (li) {
              last.querySelector("ul.clips").appendChild(li);
            });
          } else {
            more.parentNode.insertBefore(day, more);
            last = day;
          }
        });
        var next = doc.querySelector(".more");
        if (next) { more.replaceWith(next); } else { more.remove(); }
      })
      .catch(function () { window.location.href = link.href; });
  });
})();
