-- The PostgreSQL ledger: jobs, their events (history and stream in one table) and the outbox.
-- Applied by ingest_ray/ledger/migrate.py inside the ledger's schema (search_path is set),
-- in one transaction under an advisory lock; recorded in ledger_schema_version.

CREATE TABLE jobs (
    job_id           text PRIMARY KEY,             -- ULID: lexical order = creation order
    tenant_id        text NOT NULL,
    doc_key          text NOT NULL,
    pipeline         text NOT NULL,
    status           text NOT NULL
        CHECK (status IN ('queued', 'processing', 'completed', 'failed', 'cancelled')),
    stage            text,
    priority         smallint NOT NULL CHECK (priority BETWEEN 0 AND 9),
    attempts         integer NOT NULL DEFAULT 0,
    error            jsonb,
    metadata         jsonb NOT NULL DEFAULT '{}',
    outputs          jsonb NOT NULL DEFAULT '{}',  -- stage name -> that stage's small result
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    started_at       timestamptz,
    finished_at      timestamptz,
    lease_expires_at timestamptz,
    next_attempt_at  timestamptz,
    stage_errors     integer NOT NULL DEFAULT 0,
    stage_losses     integer NOT NULL DEFAULT 0,
    event_seq        integer NOT NULL DEFAULT 1    -- seq of the job's last event
);

-- one live or completed job per (tenant, document): the idempotency key of create, and the
-- guard of a retry (a failed job cannot be queued again while another job holds the document)
CREATE UNIQUE INDEX jobs_live_doc ON jobs (tenant_id, doc_key)
    WHERE status IN ('queued', 'processing', 'completed');
CREATE INDEX jobs_tenant_doc ON jobs (tenant_id, doc_key, job_id);
CREATE INDEX jobs_tenant ON jobs (tenant_id, job_id);
CREATE INDEX jobs_status ON jobs (status, job_id);
CREATE INDEX jobs_tenant_status ON jobs (tenant_id, status, job_id);
CREATE INDEX jobs_stage ON jobs (stage, job_id);
CREATE INDEX jobs_lease ON jobs (lease_expires_at, job_id) WHERE lease_expires_at IS NOT NULL;
CREATE INDEX jobs_finished ON jobs (finished_at) WHERE finished_at IS NOT NULL;

-- every event of every job: the job's history and its (uncapped) event stream
CREATE TABLE job_events (
    job_id      text NOT NULL REFERENCES jobs (job_id) ON DELETE CASCADE,
    seq         integer NOT NULL,                 -- 1, 2, 3 ... per job
    kind        text NOT NULL CHECK (kind IN ('created', 'transition', 'stage')),
    at          timestamptz NOT NULL,
    from_status text,
    to_status   text NOT NULL,
    reason      text,
    stage       text,
    attempts    integer NOT NULL DEFAULT 0,
    error       jsonb,
    data        jsonb NOT NULL DEFAULT '{}',
    PRIMARY KEY (job_id, seq)
);

-- messages that follow a ledger change, written in the change's transaction and published
-- by the outbox relay; ``owner``/``claimed_at`` say which relay holds an entry since when
CREATE TABLE outbox (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    topic      text NOT NULL,
    key        text,
    value      bytea NOT NULL,
    event_id   text NOT NULL,
    headers    jsonb NOT NULL DEFAULT '[]',
    owner      text,
    claimed_at timestamptz,
    deliveries integer NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX outbox_fresh ON outbox (id) WHERE owner IS NULL;
CREATE INDEX outbox_owned ON outbox (owner, id) WHERE owner IS NOT NULL;
