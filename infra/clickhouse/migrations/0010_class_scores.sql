-- Every class's probability of a multiclass prediction (the event's optional class_scores), so a
-- reference profile built from stored predictions can calibrate each class one versus the rest and
-- quality is estimated per class before labels arrive (driftline/metrics/cbpe.py).
ALTER TABLE {db}.predictions ADD COLUMN IF NOT EXISTS class_scores Map(String, Float64) AFTER score;
