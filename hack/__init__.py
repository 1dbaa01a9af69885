"""Development and test tooling that is not shipped with kubeinfer (hack/kind, hack/controlplane, hack/helm)."""
