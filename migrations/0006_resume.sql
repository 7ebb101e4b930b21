-- Resumable transfers: where each attempt's stream started (0 for a fresh one),
-- and until when a receive whose connection broke is parked for a resume.
ALTER TABLE send_history ADD COLUMN resumed_from INTEGER NOT NULL DEFAULT 0;
ALTER TABLE receive_history ADD COLUMN resumed_from INTEGER NOT NULL DEFAULT 0;
ALTER TABLE receive_history ADD COLUMN parked_until TEXT;
