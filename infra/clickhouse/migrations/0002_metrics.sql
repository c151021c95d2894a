-- Metrics in long format: one row per (window, model, version, family, metric, feature, segment);
-- sliding windows share starts with others, so the window's end is part of the key.
-- ReplacingMergeTree on that key: a window recomputed after a restart replaces its row.
CREATE TABLE IF NOT EXISTS {db}.metrics
(
    window_start DateTime64(3, 'UTC'),
    window_end   DateTime64(3, 'UTC'),
    model        String,
    version      String,
    family       String,
    metric       String,
    feature      String,
    segment      String,
    value        Float64,
    n            UInt64,
    complete     UInt8,
    computed_at  DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(computed_at)
PARTITION BY toYYYYMM(window_start)
ORDER BY (model, version, family, metric, feature, segment, window_start, window_end)
TTL toDateTime(window_start) + INTERVAL {ttl_days} DAY;
