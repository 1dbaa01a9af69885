"""What the tests and perf scripts run against, on this machine: not shipped with kubeinfer.

The kwokctl control plane (`controlplane`), the operator and gateway as child processes
(`operator_process`, `gateway_process`), one factory that prepares a namespace for them (`namespace_env`),
the loopback Hugging Face Hub (`hub`) and S3 server (`s3`), llama-server replicas (`replicas`) and the
headless Chromium fixtures of the console tests (`browser`). Tests and `perf/` import it; it never imports
`tests`.
"""
