"""Grafana dashboards as code: built from the monitor spec, provisioned from files or pushed over the API."""
