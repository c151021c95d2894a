-- The monitoring engine's open windows, saved when a worker stops and taken up by whichever
-- worker next sees the model version. `state` is signed (HMAC-SHA256) by the worker; an
-- unsigned or altered state is never loaded. A state is used once: loading it inserts a
-- newer row with consumed = 1, so a later crash never reloads an outdated state.
CREATE TABLE IF NOT EXISTS {db}.engine_checkpoints
(
    group_id String,
    model    String,
    version  String,
    saved_at DateTime64(3, 'UTC'),
    state    String CODEC(ZSTD(3)),
    consumed UInt8
)
ENGINE = ReplacingMergeTree(saved_at)
ORDER BY (group_id, model, version);
