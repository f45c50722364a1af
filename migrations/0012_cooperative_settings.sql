-- Terms the board sets, overriding the configuration's defaults (the fee on releases, the review
-- window). One row per setting; changes are in the audit log.
CREATE TABLE cooperative_settings (
    key         TEXT PRIMARY KEY,              -- fee_basis_points, review_window_days
    value       BIGINT NOT NULL,
    updated_by  TEXT NOT NULL,
    updated_at  BIGINT NOT NULL
);
