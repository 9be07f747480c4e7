-- At most one queued run per identity: two clients queueing the same run at once (the
-- dashboard, `vlm-eval queue`) get one run, not two that workers would execute side by side.
CREATE UNIQUE INDEX runs_queued_identity ON runs (identity_key) WHERE status = 'queued';
