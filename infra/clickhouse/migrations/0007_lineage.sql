-- Lineage of offline artefacts: dataset snapshots, models, ONNX files, profiles, reports.
-- An artefact is identified by the SHA-256 of its content; parents are the artefacts it was made from.
CREATE TABLE IF NOT EXISTS {db}.lineage
(
    artefact_id  String,
    kind         String,
    name         String,
    path         String,
    created_at   DateTime64(3, 'UTC'),
    code_version String,
    params       String,
    metrics      String,
    parents      Array(String)
)
ENGINE = ReplacingMergeTree(created_at)
ORDER BY artefact_id;
