-- The labeling loop. Label events name the guideline version their annotator followed;
-- guidelines are versioned documents per task; labeling_requests are the predictions the
-- stream asked people to label (active learning), so the loop's closing can be measured.
ALTER TABLE {db}.labels ADD COLUMN IF NOT EXISTS guideline_version String DEFAULT '' AFTER annotator;

CREATE TABLE IF NOT EXISTS {db}.labeling_guidelines
(
    task         String,
    version      String,
    created_at   DateTime64(3, 'UTC'),
    author       String,
    content_hash String,
    labels       Array(String),
    document     String
)
ENGINE = ReplacingMergeTree(created_at)
ORDER BY (task, version);

CREATE TABLE IF NOT EXISTS {db}.labeling_requests
(
    event_id     String,
    model        String,
    version      String,
    ts           DateTime64(3, 'UTC'),
    window_start DateTime64(3, 'UTC'),
    strategy     String,
    uncertainty  Float64,
    requested_at DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(requested_at)
PARTITION BY toYYYYMM(ts)
ORDER BY (model, event_id)
TTL toDateTime(ts) + INTERVAL {ttl_days} DAY;
