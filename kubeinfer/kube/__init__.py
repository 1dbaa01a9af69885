"""The one Kubernetes adapter: clients, errors, owner references, child objects, result ConfigMaps, conditions.

Every other package that talks to the API server (operator, gateway, CLI, pod steps, cluster reads) builds its
client here, so one retry policy and one error vocabulary hold everywhere. The domain never imports it.
"""
