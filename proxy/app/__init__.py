"""The composition root: the app factory, every cleanup context and periodic task, logging set-up, and the
server runner. Anything that touches the network or disk is created here and closed by the app's cleanup.
"""

from proxy.app.factory import create_app

__all__ = ["create_app"]
