"""How one attempt of a job on one node failed, as the failover loop needs to know it.

``retryable``: another node may be tried, because nothing reached the client yet;
``node_fault``: it counts against the node's circuit breaker (a failure of the node, not
of the request); ``accepted``: a worker took the job (admission then keeps the request's
slot). The dispatcher, the attempt watch and a streamed job raise these.
"""

from __future__ import annotations

from typing import Final

from api_router.backends.base import BackendError
from api_router.dispatch.protocol import ErrorData, Event, ProtocolError
from api_router.errors import ApiError

# Worker error reasons never retried whatever the worker says: the deadline has passed, or
# the job itself is broken and would fail on every node.
_NEVER_RETRIED: Final = frozenset({"expired", "malformed_job"})


class AttemptFailed(ApiError):
    """One attempt on one node failed before any output reached the client."""

    accepted = True

    def __init__(self, code: str, message: str, *, retryable: bool, node_fault: bool) -> None:
        super().__init__(code, message)
        self.retryable = retryable
        self.node_fault = node_fault


class JobNotAccepted(AttemptFailed):
    """The job failed before any worker accepted it: nothing ran, so admission refunds all."""

    accepted = False


class NodeFull(JobNotAccepted):
    """The node's backlog is at its limit: skipped for the next candidate, not an attempt."""

    def __init__(self, node_id: str) -> None:
        super().__init__("no_capacity", f"node {node_id} is full", retryable=True, node_fault=False)


class NodeOutOfReach(NodeFull):
    """A streams node while Redis is away (its stream cannot be written): skipped like a
    full node, so a direct node of the plan still serves (local-only mode); when no node
    can, the request gets the store's own 503."""

    def __init__(self, node_id: str, store: ApiError) -> None:
        super().__init__(node_id)
        self.code, self.message, self.headers = store.code, store.message, dict(store.headers)
        self.args = (store.message,)


def attempt_lost(node_id: str, why: str) -> AttemptFailed:
    """An accepted attempt whose worker is taken for dead: silent, or gone from the health
    registry. Another node may take the job over (the lost one is cancelled)."""
    return AttemptFailed(
        "upstream_timeout", f"node {node_id} {why}", retryable=True, node_fault=True
    )


def stream_out_of_time(node_id: str) -> ApiError:
    """A running stream's deadline passed: final, whichever transport carried it."""
    return ApiError("upstream_timeout", f"node {node_id} did not finish in time")


def upstream_error(event: Event, kind: type[AttemptFailed]) -> AttemptFailed:
    """The worker's error event; retryable when the worker says so (a node-side failure),
    except for the reasons in ``_NEVER_RETRIED``."""
    try:
        error = event.error()
    except ProtocolError:
        return kind(
            "upstream_error",
            f"node {event.node} failed with an unreadable error",
            retryable=False,
            node_fault=True,
        )
    return failure_of(event.node, error, kind)


def failure_of(node_id: str, error: ErrorData, kind: type[AttemptFailed]) -> AttemptFailed:
    """A node's failure as an attempt's, whichever transport reported it (a worker's
    ``error`` event, or the direct transport's backend call): retryable when the node
    says so (a node-side failure), except for the reasons in ``_NEVER_RETRIED``."""
    if error.reason == "invalid_request":  # the node answered: the request is at fault
        message = f"node {node_id} refused the request: {error.message}"
        return kind("invalid_request", message, retryable=False, node_fault=False)
    retryable = error.retryable and error.reason not in _NEVER_RETRIED
    return kind(
        "upstream_error",
        f"node {node_id} failed: {error.reason}: {error.message}",
        retryable=retryable,
        node_fault=retryable,
    )


def backend_failure(node_id: str, error: BackendError) -> AttemptFailed:
    """A direct node's backend call failed (the direct transport): as a worker would have
    reported it, except that running out of time is a timeout (504) here. It may go to
    another node when time is left (a connection not opened in ``direct.connect_timeout_s``);
    the failover loop sees whether it is."""
    if error.reason == "backend_timeout":
        message = f"node {node_id} failed: {error.message}"
        return AttemptFailed("upstream_timeout", message, retryable=True, node_fault=True)
    data = ErrorData(error.reason, error.message, error.retryable)
    return failure_of(node_id, data, AttemptFailed)
