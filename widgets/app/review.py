"""The review app as ``panel serve`` runs it, once per browser session (``workbench review`` starts it).

The page comes from the URL's query arguments: see :mod:`workbench.widgets.apps`.
"""

from workbench.widgets.apps import serve_page

serve_page()
