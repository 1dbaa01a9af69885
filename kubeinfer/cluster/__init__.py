"""Reads and small actions on a live cluster through the Kubernetes API, shared by the gateway and the CLI.

Not a shell (it holds no handlers or routes) and not the domain (it imports the kubernetes client):
model endpoints from EndpointSlices, and the pods and logs of model servers and batch workers.
"""
