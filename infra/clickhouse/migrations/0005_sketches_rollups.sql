-- Queryable drift sketches, metric rollups for long ranges, and TTLs that drop whole parts.
-- {metrics_ttl_days} and {rollup_ttl_days} come from DRIFTLINE_METRICS_TTL_DAYS / DRIFTLINE_ROLLUP_TTL_DAYS.

-- Per window and feature, the monitoring engine's mergeable drift state: counts over the
-- reference profile's quantile bins (numeric) or categories (categorical), with the
-- reference's counts over the same bins. Counts add up, so drift over any range of windows
-- is recomputed in SQL (sumForEach), without replaying Kafka; README shows the query.
CREATE TABLE IF NOT EXISTS {db}.drift_sketches
(
    window_start DateTime64(3, 'UTC'),
    window_end   DateTime64(3, 'UTC'),
    model        String,
    version      String,
    feature      String,
    segment      String,
    kind         String,
    bins         Array(String),
    counts       Array(UInt64),
    reference    Array(Float64),
    grid_counts  Array(UInt64),
    n            UInt64,
    complete     UInt8,
    computed_at  DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(computed_at)
PARTITION BY toYYYYMM(window_start)
ORDER BY (model, version, feature, segment, window_start, window_end)
TTL toDateTime(window_start) + INTERVAL {metrics_ttl_days} DAY
SETTINGS ttl_only_drop_parts = 1;

-- Hourly and daily rollups of complete windows, for dashboards over months. Refreshable
-- views recompute the recent past from `metrics FINAL` (8 days: labels up to a week late
-- recompute their windows) and append; ReplacingMergeTree keeps the newest per key, so a
-- recomputed window is never counted twice (an insert-triggered view would count it again).
-- value_avg is the mean of the windows' values; n sums their sample sizes.
CREATE TABLE IF NOT EXISTS {db}.metrics_hourly
(
    hour         DateTime('UTC'),
    model        String,
    version      String,
    family       String,
    metric       String,
    feature      String,
    segment      String,
    value_avg    Float64,
    value_min    Float64,
    value_max    Float64,
    value_last   Float64,
    windows      UInt64,
    n            UInt64,
    refreshed_at DateTime('UTC')
)
ENGINE = ReplacingMergeTree(refreshed_at)
PARTITION BY toYYYYMM(hour)
ORDER BY (model, version, family, metric, feature, segment, hour)
TTL hour + INTERVAL {rollup_ttl_days} DAY
SETTINGS ttl_only_drop_parts = 1;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.metrics_hourly_refresh
REFRESH EVERY 10 MINUTE APPEND TO {db}.metrics_hourly AS
SELECT toStartOfHour(m.window_start) AS hour, m.model AS model, m.version AS version, m.family AS family,
       m.metric AS metric, m.feature AS feature, m.segment AS segment,
       avg(m.value) AS value_avg, min(m.value) AS value_min, max(m.value) AS value_max,
       argMax(m.value, m.window_start) AS value_last, count() AS windows, sum(m.n) AS n, now() AS refreshed_at
FROM {db}.metrics AS m FINAL
WHERE m.complete = 1 AND m.window_start >= now() - INTERVAL 8 DAY
GROUP BY hour, model, version, family, metric, feature, segment;

CREATE TABLE IF NOT EXISTS {db}.metrics_daily
(
    day          Date,
    model        String,
    version      String,
    family       String,
    metric       String,
    feature      String,
    segment      String,
    value_avg    Float64,
    value_min    Float64,
    value_max    Float64,
    value_last   Float64,
    windows      UInt64,
    n            UInt64,
    refreshed_at DateTime('UTC')
)
ENGINE = ReplacingMergeTree(refreshed_at)
PARTITION BY toYYYYMM(day)
ORDER BY (model, version, family, metric, feature, segment, day)
TTL day + INTERVAL {rollup_ttl_days} DAY
SETTINGS ttl_only_drop_parts = 1;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.metrics_daily_refresh
REFRESH EVERY 1 HOUR APPEND TO {db}.metrics_daily AS
SELECT toDate(h.hour) AS day, h.model AS model, h.version AS version, h.family AS family, h.metric AS metric,
       h.feature AS feature, h.segment AS segment,
       sum(h.value_avg * h.windows) / sum(h.windows) AS value_avg, min(h.value_min) AS value_min,
       max(h.value_max) AS value_max, argMax(h.value_last, h.hour) AS value_last, sum(h.windows) AS windows,
       sum(h.n) AS n, now() AS refreshed_at
FROM {db}.metrics_hourly AS h FINAL
WHERE h.hour >= now() - INTERVAL 9 DAY
GROUP BY day, model, version, family, metric, feature, segment;

-- Partitions are by day (events) or month (metrics, alerts): with this setting an expired
-- part is dropped whole instead of rewritten row by row.
ALTER TABLE {db}.predictions MODIFY SETTING ttl_only_drop_parts = 1;
ALTER TABLE {db}.labels MODIFY SETTING ttl_only_drop_parts = 1;
ALTER TABLE {db}.dead_letters MODIFY SETTING ttl_only_drop_parts = 1;
ALTER TABLE {db}.metrics MODIFY SETTING ttl_only_drop_parts = 1;
ALTER TABLE {db}.alert_events MODIFY SETTING ttl_only_drop_parts = 1;
ALTER TABLE {db}.alert_notifications MODIFY SETTING ttl_only_drop_parts = 1;
