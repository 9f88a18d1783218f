"""The failure drills of ``docs/runbooks.md``, run against a real local stack.

Each drill starts Redis, the broker, workers, gateways and a Prometheus evaluating the
alert rules (their ``for:`` windows shortened), holds a steady load, injects its fault,
waits for the alert, applies the runbook's mitigation and reports what it measured.
``make drill-backend-failover`` and ``make drill-exporter-outage`` run them;
``tests/drills/`` runs them in a bounded form.
"""
