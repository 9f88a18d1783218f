-- The audit trail: one row per request's audit record and per admin action, in tables
-- partitioned by day (UTC) on the record's own time. The partition key is part of the
-- primary key (PostgreSQL requires it of a unique constraint on a partitioned table) and is
-- derived from the record itself, so a record delivered twice lands in the same partition
-- and its second insert does nothing. Partitions are created and dropped by the sink
-- (usage/audit_partitions.py), never here.

CREATE TABLE audit_requests (
    request_id  text        NOT NULL,
    finished_at timestamptz NOT NULL,
    tenant      text        NOT NULL,
    status      text        NOT NULL,
    record      jsonb       NOT NULL,
    PRIMARY KEY (request_id, finished_at)
) PARTITION BY RANGE (finished_at);

-- The listing: newest first, of one tenant or of all.
CREATE INDEX audit_requests_by_tenant ON audit_requests (tenant, finished_at DESC, request_id DESC);
CREATE INDEX audit_requests_by_time ON audit_requests (finished_at DESC, request_id DESC);

CREATE TABLE audit_admin_actions (
    action_id text        NOT NULL,
    at        timestamptz NOT NULL,
    actor     text        NOT NULL,
    action    text        NOT NULL,
    target    text        NOT NULL,
    record    jsonb       NOT NULL,
    PRIMARY KEY (action_id, at)
) PARTITION BY RANGE (at);

CREATE INDEX audit_admin_actions_by_time ON audit_admin_actions (at DESC);
