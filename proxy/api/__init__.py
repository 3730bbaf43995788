"""The HTTP edge: every AppKey, middlewares, request parsing, authentication and the handlers.

Handlers parse, call the serving pipeline or a service, and render; nothing below this package imports it.
"""
