"""The Grafana dashboards of api-router, built with Grafana's own SDK
(``grafana-foundation-sdk``) and written as JSON to ``deployments/grafana/dashboards/``.

Rewrite the files after a change with ``make dashboards`` (a test fails while the
checked-in JSON differs from what this package builds)."""
