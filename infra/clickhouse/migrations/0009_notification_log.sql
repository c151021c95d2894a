-- The notification log, after Alertmanager's nflog: what each subscription was last told about
-- each alert group (the firing and resolved alerts of its last delivered notification), so that a
-- restarted worker neither repeats a notification within repeat_interval nor forgets to send the
-- resolution of an alert it announced. The newest row per (group, subscription) wins.
CREATE TABLE IF NOT EXISTS {db}.notification_log
(
    sent_at         DateTime64(3, 'UTC'),
    group_key       String,   -- JSON: [[label, value], ...] in the group_by order
    subscription_id String,
    notification_id String,
    firing          Array(String),
    resolved        Array(String)
)
ENGINE = ReplacingMergeTree(sent_at)
ORDER BY (group_key, subscription_id);
