-- The fair backlog index: the queued jobs of each (tenant, priority), oldest first, which the
-- Dispatcher pulls from in fair order when more jobs are queued than it holds in memory.
-- (On a large ledger this build locks writes to jobs while it runs; apply it in a quiet moment.)
CREATE INDEX jobs_queued_fair ON jobs (tenant_id, priority, job_id) WHERE status = 'queued';
