-- Raw events and dead letters. {db} and {ttl_days} are filled in by driftline.sinks.migrations
-- from validated settings (a database name of [A-Za-z0-9_] and a whole number of days).
-- `prediction` and `label` hold the value's JSON text as sent (1, 1.0, true, cat); the
-- `_norm` columns hold one text form per class, so that 1, 1.0 and true join.
-- ReplacingMergeTree + an ORDER BY that ends in the event key: a batch replayed with other
-- boundaries (after a crash between insert and commit) collapses to one row per event;
-- the insert deduplication token catches the common case of an identical retry at once.

CREATE TABLE IF NOT EXISTS {db}.predictions
(
    event_id    String,
    model       String,
    version     String,
    ts          DateTime64(3, 'UTC'),
    route       String DEFAULT 'primary',
    prediction  String,
    prediction_norm String MATERIALIZED multiIf(prediction = 'true', '1', prediction = 'false', '0',
                toFloat64OrNull(prediction) = floor(toFloat64OrNull(prediction)) AND abs(toFloat64OrNull(prediction)) < 1e15,
                toString(toInt64(toFloat64OrNull(prediction))), prediction),
    score       Nullable(Float64),
    latency_ms  Nullable(Float64),
    features    String CODEC(ZSTD(1)),
    attributes  Map(String, String),
    kpis        Map(String, Float64),
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(ingested_at)
PARTITION BY toYYYYMMDD(ts)
ORDER BY (model, version, ts, event_id)
TTL toDateTime(ts) + INTERVAL {ttl_days} DAY
SETTINGS non_replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS {db}.labels
(
    event_id    String,
    label       String,
    label_norm  String MATERIALIZED multiIf(label = 'true', '1', label = 'false', '0',
                toFloat64OrNull(label) = floor(toFloat64OrNull(label)) AND abs(toFloat64OrNull(label)) < 1e15,
                toString(toInt64(toFloat64OrNull(label))), label),
    ts          DateTime64(3, 'UTC'),
    annotator   String DEFAULT '',
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(ingested_at)
PARTITION BY toYYYYMMDD(ts)
ORDER BY (event_id, annotator)
TTL toDateTime(ts) + INTERVAL {ttl_days} DAY
SETTINGS non_replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS {db}.dead_letters
(
    received_at  DateTime64(3, 'UTC'),
    topic        String,
    partition    Int32,   -- -1: not known (an event ClickHouse refused after it was decoded)
    offset       Int64,
    event_index  Int32,
    code         String,
    reason       String,
    payload      String CODEC(ZSTD(1))
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMMDD(received_at)
ORDER BY (topic, partition, offset, event_index)
TTL toDateTime(received_at) + INTERVAL {ttl_days} DAY
SETTINGS non_replicated_deduplication_window = 10000;
