"""The built-in deployment targets, one module each: ``local`` (processes on this machine),
``docker`` (containers on the local engine), ``swarm`` (Docker Swarm services) and ``kubernetes``
(``k8s://CONTEXT/NAMESPACE``). They implement :class:`~workbench.deployment.base.Target` and are
found through the ``workbench.targets`` entry-point group like any other package's targets.
"""

from __future__ import annotations
