"""Development and test tooling that is not shipped with kubeinfer (see hack/kubelet_standin)."""
