"""Idempotency-Key (IETF httpapi draft): a request's key and fingerprint, its claim in
Redis and the answer stored for replays."""
