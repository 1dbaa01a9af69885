"""Prometheus metric definitions, one module per component; no framework imports, so any layer may use them.

Every metric lives in prometheus_client's default registry. Labels only carry small, bounded sets (route
templates, statuses, rules, the cells of a matrix); never request, batch, file or custom ids.
"""
