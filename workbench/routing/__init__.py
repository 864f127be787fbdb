"""The traffic router: the program in front of a deployment's model servers.

It holds the deployment's address through updates, shares requests between a champion and a
challenger (split, shadow, or a bandit fed by rewards: :mod:`workbench.routing.bandit`) and passes
feedback on to the prediction log. Start it with ``workbench route --config FILE``; the table it
routes by is :class:`~workbench.routing.router.RouteTable`.
"""

from __future__ import annotations
