"""``kubectl headway``: a kubectl plugin to see and steer a ModelDeployment (docs/kubectl-plugin.md).

kubectl runs any executable named ``kubectl-*`` on PATH as a subcommand; the package installs
``kubectl-headway`` (``[project.scripts]``). Modelled on ``kubectl argo rollouts``: ``get`` draws
the object as a tree (variants, the current step and its time left, each SLO with its evidence,
approvals, cost, the last decisions) and ``--watch`` redraws it on every watch event; the actions
(``promote``, ``promote-step``, ``abort``, ``retry``, ``pause``, ``resume``) set the same control
annotations as the README's ``kubectl annotate`` commands and say what the operator will do;
``approve``/``reject`` create a ModelApproval as the requesting user.

The modules: ``view`` (reading the object), ``tree`` (the drawing) and ``actions`` (what an
action patches or creates, and says) are pure functions of the objects and ``now``, so their
output is tested as golden text; ``kube`` is the I/O (the Kubernetes client) and ``command``
the command line.
"""
