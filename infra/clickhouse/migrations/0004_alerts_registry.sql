-- Alerting, the model registry and rollouts. Every table is append-only history; the
-- ReplacingMergeTree keys make a replayed write (after a restart) replace, not double.

-- Each alert state change (pending, firing, resolved).
CREATE TABLE IF NOT EXISTS {db}.alert_events
(
    at           DateTime64(3, 'UTC'),
    fingerprint  String,
    alertname    String,
    model        String,
    version      String,
    severity     String,
    state        String,
    labels       Map(String, String),
    annotations  Map(String, String),
    value        Float64,
    window_start DateTime64(3, 'UTC'),
    window_end   DateTime64(3, 'UTC'),
    starts_at    DateTime64(3, 'UTC'),
    ends_at      DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(at)
PARTITION BY toYYYYMM(window_end)
ORDER BY (model, fingerprint, window_end, state)
TTL toDateTime(window_end) + INTERVAL {ttl_days} DAY;

-- Each notification attempt (webhook POST), delivered or not.
CREATE TABLE IF NOT EXISTS {db}.alert_notifications
(
    at              DateTime64(3, 'UTC'),
    notification_id String,
    subscription_id String,
    subscription    String,
    group_key       String,
    attempt         UInt16,
    status          String,
    http_status     UInt16,
    error           String,
    duration_ms     Float64,
    alerts          UInt32
)
ENGINE = ReplacingMergeTree(at)
PARTITION BY toYYYYMM(at)
ORDER BY (subscription_id, notification_id, attempt)
TTL toDateTime(at) + INTERVAL {ttl_days} DAY;

-- The registry's history: one row per revision of a model's state (stages, weights, lock).
CREATE TABLE IF NOT EXISTS {db}.model_registry
(
    at              DateTime64(3, 'UTC'),
    model           String,
    revision        UInt64,
    action          String,
    changed_version String,
    changed_by      String,
    reason          String,
    locked          UInt8,
    versions        String
)
ENGINE = ReplacingMergeTree(at)
ORDER BY (model, revision);

-- Canary analysis decisions, with every check's measurements.
CREATE TABLE IF NOT EXISTS {db}.rollout_decisions
(
    at            DateTime64(3, 'UTC'),
    decision_id   String,
    model         String,
    canary        String,
    primary       String,
    window_start  DateTime64(3, 'UTC'),
    window_end    DateTime64(3, 'UTC'),
    action        String,
    weight_before Float64,
    weight_after  Float64,
    failed_checks UInt32,
    reason        String,
    checks        String
)
ENGINE = ReplacingMergeTree(at)
ORDER BY (model, canary, window_end, decision_id);

CREATE TABLE IF NOT EXISTS {db}.silences
(
    updated_at DateTime64(3, 'UTC'),
    id         String,
    matchers   Array(String),
    starts_at  DateTime64(3, 'UTC'),
    ends_at    DateTime64(3, 'UTC'),
    created_by String,
    comment    String
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY id;

-- Subscriptions without their secrets (those live on the control topic only) and with
-- URLs cut to scheme://host/path (query strings often carry tokens).
CREATE TABLE IF NOT EXISTS {db}.subscriptions
(
    updated_at   DateTime64(3, 'UTC'),
    id           String,
    name         String,
    url          String,
    models       Array(String),
    min_severity String,
    matchers     Array(String),
    created_by   String,
    created_at   DateTime64(3, 'UTC'),
    deleted      UInt8
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY id;

-- Shadow predictions are compared with the primary's answer to the same request.
ALTER TABLE {db}.predictions ADD COLUMN IF NOT EXISTS request_id String DEFAULT '';
