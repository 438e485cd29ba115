// Keyboard: ← / → step to the older / newer clip on a clip page. No other script is needed.
document.addEventListener("keydown", function (e) {
  if (e.target && /^(INPUT|SELECT|TEXTAREA)$/.test(e.target.tagName)) return;
  var link = e.key === "ArrowLeft" ? document.getElementById("prev")
           : e.key === "ArrowRight" ? document.getElementById("next") : null;
  if (link) { window.location.href = link.href; }
});
