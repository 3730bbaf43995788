"""The web dashboard at /dashboard: pages, sign-in, and the JSON its pages draw from.

Modules: sessions (signed cookie, login links), access (who is signed in, security headers), assets (the
shipped static files), dispatch (reading /v1 routes in process), pages (HTML, sign-in, sign-out), data
(/dashboard/api/*). The static files in static/ are package data: the dashboard works offline.
"""
