-- What a send expected its stream to come to, decided when its plan was known,
-- for the progress estimate of `status` and `task run` (NULL: no basis).
-- expected_basis says where the figure came from: 'last_stream' (the last
-- succeeded send of the task of the same kind) or 'referenced' (the share's
-- referenced bytes from its qgroup).
ALTER TABLE send_history ADD COLUMN expected_bytes INTEGER CHECK (expected_bytes IS NULL OR expected_bytes >= 0);
ALTER TABLE send_history ADD COLUMN expected_basis TEXT
    CHECK (expected_basis IS NULL OR expected_basis IN ('last_stream', 'referenced'));
