// web/js/login.js - shows why the last login failed (the server redirects
// to /login.html#failed; the token itself never appears in a URL).
const err = document.getElementById('login-error');
if (location.hash === '#failed') {
  err.hidden = false;
  history.replaceState(null, '', '/login.html');
}
