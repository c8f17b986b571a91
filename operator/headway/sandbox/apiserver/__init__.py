"""A stateful kube-apiserver emulator (built on kmock) that the sandbox and the tests run.

``server.py`` is the server (its docstring lists what it emulates and each gap); beside it:
admission of custom resources (``admission.py``, validating with ``crdschema.py``), server-side
apply (``apply.py``), patches (``patch.py``), metadata and selectors (``meta.py``), authentication
and RBAC (``rbac.py``) and the simulated built-in controllers (``kinds.py``).
"""

from headway.sandbox.apiserver.server import ApiError, KubeEmulator

__all__ = ["ApiError", "KubeEmulator"]
