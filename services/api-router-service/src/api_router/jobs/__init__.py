"""Asynchronous jobs (``Prefer: respond-async``): their records in Redis, the lease of the
replica that runs each, and their results."""
