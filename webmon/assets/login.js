// Hides the error paragraph when it is empty (the server fills it on a refused login).
"use strict";
(function () {
  var e = document.getElementById("login-error");
  if (e && !e.textContent.trim()) e.hidden = true;
})();
