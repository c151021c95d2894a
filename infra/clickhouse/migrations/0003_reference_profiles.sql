-- Reference profiles per model version, as JSON (driftline.profiles.ReferenceProfile).
-- The newest one per (model, version) is the reference; older ones stay for lineage.
CREATE TABLE IF NOT EXISTS {db}.reference_profiles
(
    model       String,
    version     String,
    created_at  DateTime64(3, 'UTC') DEFAULT now64(3),
    source      String,
    profile     String CODEC(ZSTD(3))
)
ENGINE = MergeTree
ORDER BY (model, version, created_at);
