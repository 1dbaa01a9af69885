"""kopf handlers (thin) and pure builders of Kubernetes objects."""
