"""Files ``panel serve`` runs for ``workbench review``, and the pieces of its team mode.

Importing this package does not import Panel. The ``workbench review`` command (core, UI-free) starts
``python -m workbench.widgets.app.server`` in a child process, which serves :data:`APP_FILE` with
:data:`LOGIN_PAGE` as its team sign-in page.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["APP_FILE", "DEFAULT_MODEL_ENV", "LOGIN_PAGE"]

#: The model ``/review`` shows when its URL names none (set by ``workbench review --model``).
DEFAULT_MODEL_ENV = "WORKBENCH_REVIEW_MODEL"

#: The app file served at ``/review`` (and ``/``).
APP_FILE = Path(__file__).with_name("review.py")

#: Login page for team mode (Panel's basic auth): Panel's own template loads its logo and icon from
#: a CDN, which an offline machine cannot reach. Jinja2 placeholders as in Panel's template.
LOGIN_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1.0">
  <title>Workbench review | sign in</title>
  <link rel="icon" href="data:,">
  <style>
    body { margin: 0; height: 100vh; display: flex; align-items: center; justify-content: center;
           background: #f6f8fa; font-family: system-ui, sans-serif; }
    form { background: #fff; border: 1px solid #d0d7de; border-radius: 6px; padding: 2em; width: 320px; }
    h1 { font-size: 1.3em; margin: 0 0 .3em; }
    p { color: #57606a; margin: 0 0 1em; }
    input { width: 100%; box-sizing: border-box; padding: .6em; margin: 0 0 .8em; border: 1px solid #d0d7de;
            border-radius: 4px; }
    button { width: 100%; padding: .6em; background: #1f6feb; color: #fff; border: 0; border-radius: 4px;
             font-weight: 600; }
    .error { color: #cf222e; font-weight: 600; }
  </style>
  <script>
    // After a wrong password Panel's sign-in page forgets the page asked for (its error page resets
    // the next_url cookie to "/"): remember it from the first visit and hand it back on submit.
    (function () {
      var asked = new URLSearchParams(window.location.search).get("next");
      if (asked) { sessionStorage.setItem("workbench-next", asked); }
      document.addEventListener("DOMContentLoaded", function () {
        document.querySelector("form").addEventListener("submit", function () {
          var next = sessionStorage.getItem("workbench-next");
          if (next && next.charAt(0) === "/" && next.charAt(1) !== "/") {
            document.cookie = "next_url=" + JSON.stringify(next) + "; path=/; SameSite=Lax" +
              (window.location.protocol === "https:" ? "; Secure" : "");
          }
        });
      });
    })();
  </script>
</head>
<body>
  <form action=".{{ login_endpoint }}" method="post">
    <h1>Workbench review</h1>
    <p>Sign in with your name and the team's password.</p>
    <p class="error">{{ errormessage|escape }}</p>
    <input name="username" type="text" autocapitalize="off" autocorrect="off" placeholder="your name" required>
    <input name="password" type="password" placeholder="password" required>
    <button type="submit">Sign in</button>
  </form>
</body>
</html>
"""
