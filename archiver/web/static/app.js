// Small progressive enhancements; every page works without them.
(function () {
  "use strict";

  // ← / → step to the older / newer clip on a clip page; ? shows the keys of the page.
  document.addEventListener("keydown", function (e) {
    if (e.target && /^(INPUT|SELECT|TEXTAREA)$/.test(e.target.tagName)) return;
    var help = document.getElementById("help");
    if (help && e.key === "?") { help.hidden = !help.hidden; return; }
    if (help && e.key === "Escape") { help.hidden = true; return; }
    var link = e.key === "ArrowLeft" ? document.getElementById("prev")
             : e.key === "ArrowRight" ? document.getElementById("next") : null;
    if (link) { window.location.href = link.href; }
  });

  // On a phone the filters start folded unless one is set (the clips come first).
  if (window.matchMedia && window.matchMedia("(max-width: 600px)").matches) {
    document.querySelectorAll("details.filterbox[data-active='0']").forEach(function (d) { d.open = false; });
  }

  // Hovering a clip in a grid plays it muted in place of its thumbnail (after a short pause).
  var hoverTimer = null;
  document.addEventListener("mouseover", function (e) {
    var a = e.target.closest ? e.target.closest("a.clip") : null;
    if (!a || a.querySelector("video")) return;
    var img = a.querySelector("img.thumb");
    if (!img) return;
    clearTimeout(hoverTimer);
    hoverTimer = setTimeout(function () {
      var v = document.createElement("video");
      v.className = "thumb preview";
      v.muted = true; v.loop = true; v.playsInline = true; v.autoplay = true;
      v.src = a.getAttribute("href").replace("/clip/", "/media/") + "/video";
      img.hidden = true;
      img.parentNode.insertBefore(v, img);
    }, 350);
  });
  document.addEventListener("mouseout", function (e) {
    var a = e.target.closest ? e.target.closest("a.clip") : null;
    if (!a || (e.relatedTarget && a.contains(e.relatedTarget))) return;
    clearTimeout(hoverTimer);
    var v = a.querySelector("video.preview");
    if (v) { v.pause(); v.removeAttribute("src"); v.remove(); }
    var img = a.querySelector("img.thumb");
    if (img) img.hidden = false;
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

// Timeline: marks placed on each lane's axis, hover preview, click to play in place, the next clip
// (in time, across cameras) plays when one ends; keys ← → clip, space play/pause, [ ] day, ? help.
(function () {
  "use strict";
  var box = document.getElementById("timeline");
  if (!box) return;
  var span = parseFloat(box.getAttribute("data-hours")) * 3600;
  var step = parseFloat(box.getAttribute("data-step")) || 1;
  var marks = Array.prototype.slice.call(box.querySelectorAll(".mark"));
  marks.forEach(function (m) {
    var o = parseFloat(m.getAttribute("data-o")), d = parseFloat(m.getAttribute("data-d")) || 0;
    m.style.left = Math.max(0, Math.min(100, (o / span) * 100)) + "%";
    m.style.width = Math.min(100, (d / span) * 100) + "%";
  });
  box.querySelectorAll(".tl-track, .tl-ticks").forEach(function (t) {
    t.style.backgroundSize = (100 * step * 3600 / span) + "% 100%";
  });
  box.classList.add("placed");
  var order = marks.slice().sort(function (a, b) {
    return (parseFloat(a.getAttribute("data-t")) - parseFloat(b.getAttribute("data-t")))
      || (parseInt(a.getAttribute("data-id"), 10) - parseInt(b.getAttribute("data-id"), 10));
  });
  var player = document.getElementById("tl-player");
  var video = document.getElementById("tl-video");
  var caption = document.getElementById("tl-caption");
  var open = document.getElementById("tl-open");
  var autoplay = document.getElementById("tl-autoplay");
  var tip = document.getElementById("tl-tip");
  var current = -1;

  function play(i) {
    if (i < 0 || i >= order.length) return;
    var m = order[i], id = m.getAttribute("data-id");
    if (current >= 0) { order[current].classList.remove("current"); order[current].removeAttribute("aria-current"); }
    current = i;
    m.classList.add("current");
    m.setAttribute("aria-current", "true");
    player.hidden = false;
    video.poster = m.getAttribute("data-thumb") === "1" ? "/media/" + id + "/thumbnail" : "";
    video.src = "/media/" + id + "/video";
    video.setAttribute("data-id", id);
    caption.textContent = m.getAttribute("data-label");
    open.href = "/clip/" + id;
    var p = video.play();
    if (p && p.catch) p.catch(function () {});
  }
  video.addEventListener("ended", function () {
    if (autoplay.checked && current + 1 < order.length) play(current + 1);
  });
  box.addEventListener("click", function (e) {
    var summary = e.target.closest ? e.target.closest("a.summary") : null;
    if (summary && !e.ctrlKey && !e.metaKey && !e.shiftKey) {  // the day's summary video, in the player
      e.preventDefault();
      player.hidden = false;
      video.removeAttribute("data-id");
      video.poster = "";
      video.src = summary.getAttribute("href");
      caption.textContent = "Summary of the day: " + summary.closest(".tl-name").querySelector("a").textContent;
      open.href = summary.getAttribute("href");
      var p = video.play();
      if (p && p.catch) p.catch(function () {});
      return;
    }
    var m = e.target.closest ? e.target.closest(".mark") : null;
    if (!m || e.ctrlKey || e.metaKey || e.shiftKey || e.button !== 0) return;
    e.preventDefault();
    play(order.indexOf(m));
  });
  function showTip(m) {
    var r = m.getBoundingClientRect();
    var img = tip.querySelector("img");
    if (m.getAttribute("data-thumb") === "1") {
      img.src = "/media/" + m.getAttribute("data-id") + "/thumbnail";
      img.hidden = false;
    } else { img.hidden = true; }
    tip.querySelector("span").textContent = m.getAttribute("data-label");
    tip.hidden = false;
    var left = Math.max(4, Math.min(window.innerWidth - tip.offsetWidth - 4, r.left + r.width / 2 - tip.offsetWidth / 2));
    tip.style.left = left + window.scrollX + "px";
    tip.style.top = r.top + window.scrollY - tip.offsetHeight - 8 + "px";
  }
  function hideTip() { tip.hidden = true; }
  box.addEventListener("mouseover", function (e) {
    var m = e.target.closest ? e.target.closest(".mark") : null;
    if (m) showTip(m);
  });
  box.addEventListener("mouseout", function (e) {
    if (e.target.closest && e.target.closest(".mark")) hideTip();
  });
  box.addEventListener("focusin", function (e) { if (e.target.classList.contains("mark")) showTip(e.target); });
  box.addEventListener("focusout", hideTip);
  document.addEventListener("keydown", function (e) {
    if (e.target && /^(INPUT|SELECT|TEXTAREA|BUTTON)$/.test(e.target.tagName)) return;
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.key === "ArrowRight") { e.preventDefault(); play(current < 0 ? 0 : Math.min(order.length - 1, current + 1)); }
    else if (e.key === "ArrowLeft") { e.preventDefault(); play(current < 0 ? order.length - 1 : Math.max(0, current - 1)); }
    else if (e.key === " ") {
      e.preventDefault();
      if (current < 0) { play(0); } else if (video.paused) { video.play(); } else { video.pause(); }
    }
    else if (e.key === "[") { window.location.href = document.getElementById("prevday").href; }
    else if (e.key === "]") { window.location.href = document.getElementById("nextday").href; }
  });
  var wanted = /^#clip-(\d+)$/.exec(window.location.hash);
  if (wanted) {
    var found = order.filter(function (m) { return m.getAttribute("data-id") === wanted[1]; })[0];
    if (found) { found.scrollIntoView({ block: "center" }); found.focus(); }
  }
})();
