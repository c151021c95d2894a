-- Raw events and dead letters. {db} and {ttl_days} are filled in by driftline.sinks.migrations
-- from validated settings (a database name of [A-Za-z0-9_] and a whole number of days).
-- ReplacingMergeTree + an ORDER BY that ends in the event key: a batch replayed with other
-- boundaries (after a crash between insert and commit) collapses to one row per event;
-- the insert deduplication token catches the common case of an identical retry at once.

CREATE TABLE IF NOT EXISTS {db}.predictions
(
    event_id    String,
    model       String,
    version     String,
    ts          DateTime64(3, 'UTC'),
    route       String,
    prediction  String,
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
    partition    UInt32,
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
