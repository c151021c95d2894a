"""SQL over ``drift_sketches``: drift for any time range, recomputed from the stored window states.

The counts of a feature's windows add up (``sumForEach``) to the counts of the whole range;
PSI and the unseen-category rate follow exactly as the engine computes them per window
(PSI with the same 1e-4 floor on empty bins). Parameters: ``{model}``, ``{version}``,
``{start}`` and ``{end}`` (epoch seconds; windows starting in [start, end)).
"""

from __future__ import annotations

#: PSI per numeric feature over a range of windows, and the unseen-category rate per categorical one.
DRIFT_OVER_RANGE = """
SELECT feature, kind, n,
       if(kind = 'numeric',
          arraySum(arrayMap((a, e) -> (a - e) * log(a / e),
                            arrayMap(x -> greatest(x / arraySum(counts), 1e-4), counts),
                            arrayMap(x -> greatest(x / arraySum(reference), 1e-4), reference))),
          nan) AS psi,
       if(kind = 'categorical', counts[length(counts)] / n, nan) AS unseen_rate
FROM (
    SELECT feature, any(kind) AS kind, sumForEach(counts) AS counts, any(reference) AS reference, sum(n) AS n
    FROM {db}.drift_sketches FINAL
    WHERE model = {model:String} AND version = {version:String}
      AND window_start >= fromUnixTimestamp64Milli(toInt64({start:Float64} * 1000), 'UTC')
      AND window_start < fromUnixTimestamp64Milli(toInt64({end:Float64} * 1000), 'UTC')
    GROUP BY feature
)
ORDER BY feature
"""
