"""`driftline audit` and `driftline labels ...`: data audit, labeling guidelines, suspects, the request loop."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from driftline.cli.options import clickhouse_option, fail_cleanly
from driftline.config import Settings
from driftline.events import strict_dumps
from driftline.exceptions import ConfigError
from driftline.sinks.client import ClickHouseClient


def _names(text: str | None) -> list[str]:
    return [n.strip() for n in (text or "").split(",") if n.strip()]


def _shares(text: str | None) -> dict[str, float] | None:
    if not text:
        return None
    try:
        out = {k.strip(): float(v) for k, v in (part.split("=", 1) for part in text.split(",") if part.strip())}
    except ValueError:
        raise ConfigError(f"--population {text!r}: write segment=share pairs, e.g. north=0.5,south=0.5") from None
    if not out or min(out.values()) < 0 or sum(out.values()) <= 0:
        raise ConfigError("--population needs non-negative shares that add up to more than 0")
    return out


def _need_audit_extra() -> None:
    try:
        import pandas  # noqa: F401
        import sklearn  # noqa: F401
    except ImportError:
        raise ConfigError("the audit needs pandas and scikit-learn: pip install 'driftline[audit]'") from None


def _window_frame(client: ClickHouseClient, database: str, model: str, since: str, until: str) -> Any:
    """A production window as a table: features, attributes, score, and the label where one arrived."""
    import pandas as pd

    from driftline.streams.label_metrics import CONSENSUS_LABELS

    rows = client.query(
        f"""SELECT p.event_id, p.features, p.attributes, p.score, l.label
            FROM {database}.predictions AS p FINAL
            LEFT JOIN ({CONSENSUS_LABELS.format(db=database)}) AS l ON p.event_id = l.event_id
            WHERE p.model = {{m:String}} AND p.ts >= parseDateTime64BestEffort({{a:String}}, 3, 'UTC')
              AND p.ts < parseDateTime64BestEffort({{b:String}}, 3, 'UTC')
            SETTINGS join_use_nulls = 1""",
        parameters={"m": model, "a": since, "b": until},
    ).result_rows
    import json

    records = [
        {
            "event_id": e,
            **json.loads(f or "{}"),
            **{f"attr.{k}": v for k, v in dict(a).items()},
            "score": s,
            "label": lab,
        }
        for e, f, a, s, lab in rows
    ]
    return pd.DataFrame.from_records(records).set_index("event_id") if records else pd.DataFrame()


@click.command("audit")
@click.argument("data", required=False, type=click.Path(path_type=Path))
@click.option("--reference", type=click.Path(path_type=Path), help="Reference data (e.g. the training set).")
@click.option("--label", help="The label column (class balance, label noise, guideline check).")
@click.option("--scores", help="A column with the model's probability of the positive class (label noise).")
@click.option("--keys", help="Columns that identify a record (exact duplicates); default: all.")
@click.option("--near-duplicates", "near", help="Columns compared loosely (rounded numbers, normalised text).")
@click.option("--tolerance", type=float, default=0.01, show_default=True, help="Relative rounding of numbers.")
@click.option("--segment", help="A column whose shares are compared with a reference population.")
@click.option("--population", help="Expected segment shares, e.g. north=0.5,south=0.5 (default: reference's).")
@click.option("--guideline", type=click.Path(path_type=Path, exists=True), help="Labeling guideline (YAML).")
@click.option("--ignore", help="Columns to leave out (ids, free text).")
@click.option("--max-missing", type=float, default=0.05, show_default=True)
@click.option("--max-psi", type=float, default=0.2, show_default=True)
@click.option("--max-duplicates", type=float, default=0.01, show_default=True)
@click.option("--min-class-share", type=float, default=0.05, show_default=True)
@click.option("--max-share-gap", type=float, default=0.05, show_default=True)
@click.option(
    "--max-label-noise", type=float, default=0.05, show_default=True, help="Limit on the estimated wrong-label share."
)
@click.option(
    "--min-class-rows", type=int, default=10, show_default=True, help="Smaller classes: listed as rare, not modelled."
)
@click.option(
    "--augment", type=click.Path(path_type=Path), help="Write the data plus SMOTE rows for scarce classes here."
)
@click.option("--augment-target", type=float, default=0.2, show_default=True, help="Share each class should reach.")
@click.option("--max-synthetic", type=float, default=0.3, show_default=True, help="Cap on the synthetic share.")
@clickhouse_option
@click.option("--model", help="With --clickhouse: audit this model's production window instead of DATA.")
@click.option("--since", help="Window start (ISO time, UTC).")
@click.option("--until", help="Window end (ISO time, UTC).")
@click.option("--reference-since", help="Reference window start (default: none).")
@click.option("--reference-until", help="Reference window end.")
@click.option("--out", type=click.Path(path_type=Path), default=Path(".driftline/audit"), show_default=True)
@fail_cleanly
def audit_cmd(
    data: Path | None,
    reference: Path | None,
    label: str | None,
    scores: str | None,
    out: Path,
    augment: Path | None,
    augment_target: float,
    max_synthetic: float,
    **opts: Any,
) -> None:
    """Audit DATA (CSV, TSV, Parquet, JSON lines) or a production window; exit 1 when a check fails."""
    _need_audit_extra()
    from driftline.labeling.audit import audit, read_table
    from driftline.reports.audit import audit_report

    window = {k: opts.pop(k) for k in ("clickhouse", "model", "since", "until", "reference_since", "reference_until")}
    if data is None and not (window["clickhouse"] and window["model"] and window["since"] and window["until"]):
        raise ConfigError("give DATA (a file), or --clickhouse with --model, --since and --until")
    ref = read_table(reference) if reference else None
    if data is not None:
        df, source = read_table(data), str(data)
    else:
        df, window_ref, source = _production_frames(**window)
        ref = window_ref if window_ref is not None else ref
        label = label or "label"
        scores = scores or ("score" if df["score"].notna().all() else None)
    cfg = _audit_config(label, scores, **opts)
    result = audit(df, ref, cfg)
    augmented = _augment(df, label, augment, augment_target, max_synthetic, cfg.ignore) if augment else None
    files = audit_report(out, source, result, augmented)
    click.echo(files.markdown.read_text())
    click.echo(f"report: {files.html} (+ .md, .json)")
    if not result.passed:
        sys.exit(1)


def _production_frames(
    clickhouse: str, model: str, since: str, until: str, reference_since: str | None, reference_until: str | None
) -> tuple[Any, Any, str]:
    """A model's predictions (and labels) in [since, until) and, if asked, a reference window, as frames."""
    from driftline.sinks.clickhouse import ClickHouseSink

    settings = Settings.from_env(clickhouse=clickhouse)
    sink = ClickHouseSink(settings)
    try:
        df = _window_frame(sink.client, settings.clickhouse_database, model, since, until)
        ref = None
        if reference_since and reference_until:
            ref = _window_frame(sink.client, settings.clickhouse_database, model, reference_since, reference_until)
    finally:
        sink.close()
    if df.empty:
        raise ConfigError(f"no predictions of {model} in [{since}, {until})")
    return df, ref, f"{model} predictions {since} .. {until}"


def _audit_config(
    label: str | None,
    scores: str | None,
    keys: str | None,
    near: str | None,
    tolerance: float,
    segment: str | None,
    population: str | None,
    guideline: Path | None,
    ignore: str | None,
    min_class_rows: int,
    **limits: float,
) -> Any:
    from driftline.labeling.audit import AuditConfig
    from driftline.labeling.guidelines import Guideline

    return AuditConfig(
        label=label,
        scores=scores,
        keys=_names(keys) or None,
        near_keys=_names(near),
        near_tolerance=tolerance,
        segment=segment,
        population=_shares(population),
        guideline=Guideline.from_yaml(guideline) if guideline else None,
        ignore=_names(ignore),
        min_class_rows=min_class_rows,
        **limits,
    )


@click.command("review")
@click.option("--model", required=True)
@click.option("--since", "period", default="7d", show_default=True, help="The period: 1h, 1d, 7d, 30d ...")
@click.option("--until", default=None, help="Its end (ISO time, UTC; default: now).")
@click.option("--out", type=click.Path(path_type=Path), default=Path(".driftline/reviews"), show_default=True)
@clickhouse_option
@click.option("--broker", envvar="DRIFTLINE_BROKER", show_envvar=True, help="Announce it on the alerts topic.")
@click.option("--topic-prefix", envvar="DRIFTLINE_TOPIC_PREFIX", show_envvar=True, help="Prefix of topic names.")
@fail_cleanly
def review_cmd(
    model: str, period: str, until: str | None, out: Path, broker: str | None, topic_prefix: str | None, **flags: Any
) -> None:
    """A review of MODEL for data science, engineering and product: this period against the one before."""
    from datetime import datetime

    from driftline.reports.review_job import review_event, run_review
    from driftline.sinks.clickhouse import ClickHouseSink
    from driftline.values import parse_duration

    seconds = parse_duration(period, "--since")
    end = None
    if until:
        try:
            end = datetime.fromisoformat(until.replace("Z", "+00:00")).timestamp()
        except ValueError:
            raise ConfigError(f"--until {until!r} is not an ISO time, e.g. 2026-11-27T12:00:00Z") from None
    settings = Settings.from_env(broker=broker, topic_prefix=topic_prefix, **flags)
    sink = ClickHouseSink(settings)
    try:
        sink.migrate()
        review, files, art = run_review(sink.client, settings.clickhouse_database, model, seconds, out, end)
    finally:
        sink.close()
    click.echo(files.markdown.read_text())
    click.echo(f"report: {files.html} (+ .md, .json); lineage {art.artefact_id[:12]}")
    if broker:
        from kafka import KafkaProducer

        producer = KafkaProducer(bootstrap_servers=settings.broker, **settings.kafka.kafka_python_kwargs())
        try:
            body = {"kind": "review", **review_event(review, files, art)}
            producer.send(settings.topic("alerts"), key=model.encode(), value=strict_dumps(body).encode()).get(30)
        finally:
            producer.close()
        click.echo(f"announced on {settings.topic('alerts')}")


@click.group()
def labels() -> None:
    """Labeling: guidelines, suspected label errors, the active-learning request loop."""


@labels.group("guideline")
def guideline_group() -> None:
    """Versioned labeling guidelines (label set, definitions, examples) with lineage."""


@guideline_group.command("publish")
@click.argument("path", type=click.Path(path_type=Path, exists=True))
@clickhouse_option
@fail_cleanly
def guideline_publish(path: Path, **flags: Any) -> None:
    """Store the guideline at PATH (YAML) in ClickHouse with its lineage; a version never changes."""
    from driftline.labeling.guidelines import Guideline
    from driftline.sinks.clickhouse import ClickHouseSink
    from driftline.sinks.guidelines import GuidelineStore

    guideline = Guideline.from_yaml(path)
    settings = Settings.from_env(**flags)
    sink = ClickHouseSink(settings)
    try:
        sink.migrate()
        digest, new = GuidelineStore(sink.client, settings.clickhouse_database).publish(guideline)
    finally:
        sink.close()
    state = "published" if new else "already published (same content)"
    click.echo(
        f"{guideline.task} {guideline.version}: {state}; content hash {digest[:16]}; labels {guideline.label_set}"
    )


@guideline_group.command("show")
@click.argument("task")
@click.option("--version", "version_", help="Default: the newest.")
@clickhouse_option
@fail_cleanly
def guideline_show(task: str, version_: str | None, **flags: Any) -> None:
    """Print a task's guideline (Markdown) and its published versions."""
    from driftline.sinks.clickhouse import ClickHouseSink
    from driftline.sinks.guidelines import GuidelineStore

    settings = Settings.from_env(**flags)
    sink = ClickHouseSink(settings)
    try:
        sink.migrate()
        store = GuidelineStore(sink.client, settings.clickhouse_database)
        found, versions = store.get(task, version_), store.versions(task)
    finally:
        sink.close()
    if found is None:
        raise ConfigError(f"no guideline {task} {version_ or ''} published; `driftline labels guideline publish`")
    click.echo(found.markdown())
    click.echo(f"versions: {', '.join(versions)}")


@labels.command("suspects")
@click.option("--model", required=True)
@click.option("--confidence", type=float, default=0.9, show_default=True)
@click.option("--limit", type=int, default=50, show_default=True)
@clickhouse_option
@fail_cleanly
def labels_suspects(model: str, confidence: float, limit: int, **flags: Any) -> None:
    """Labelled predictions the model was confident about and the labels contradict: review these first."""
    from driftline.sinks.clickhouse import ClickHouseSink

    settings = Settings.from_env(**flags)
    sink = ClickHouseSink(settings)
    db = settings.clickhouse_database
    try:
        _require_model(sink.client, db, model)
        rows = sink.client.query(
            f"""SELECT p.event_id, p.version, p.score, p.prediction_norm, l.label_norm, l.annotator,
                       l.guideline_version
                FROM {db}.predictions AS p FINAL INNER JOIN {db}.labels AS l FINAL ON p.event_id = l.event_id
                WHERE p.model = {{m:String}} AND (p.score >= {{c:Float64}} OR p.score <= 1 - {{c:Float64}})
                  AND toString(toUInt8(p.score >= 0.5)) != l.label_norm
                ORDER BY abs(p.score - 0.5) DESC, p.event_id LIMIT {{n:UInt32}}""",
            parameters={"m": model, "c": confidence, "n": limit},
        ).result_rows
    finally:
        sink.close()
    if not rows:
        click.echo(f"no confident disagreements for {model} (its labelled predictions agree with the labels)")
    for event_id, version, score, pred, lab, annotator, guide in rows:
        who = f" by {annotator}" if annotator else ""
        click.echo(
            f"{event_id:<24}{version:<8}score {score:.3f}  predicted {pred}  labelled {lab}{who}"
            + (f" (guideline {guide})" if guide else "")
        )


def _require_model(client: ClickHouseClient, db: str, model: str) -> None:
    """A model with no predictions is most likely a typo: say so, with the models there are."""
    known = [str(r[0]) for r in client.query(f"SELECT DISTINCT model FROM {db}.predictions ORDER BY model").result_rows]
    if model not in known:
        shown = ", ".join(known[:20]) or "none yet"
        raise ConfigError(f"unknown model {model!r}: no predictions of it in {db}.predictions (models: {shown})")


@labels.command("agreement")
@click.argument("data", required=False, type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--item", "item_col", default="item", show_default=True, help="DATA's column naming the item.")
@click.option("--annotator", "annotator_col", default="annotator", show_default=True, help="DATA's annotator column.")
@click.option("--label", "label_col", default="label", show_default=True, help="DATA's label column.")
@clickhouse_option
@click.option("--model", help="With --clickhouse: the labels of this model's predictions instead of DATA.")
@click.option("--since", help="With --model: predictions from (ISO time, UTC).")
@click.option("--until", help="With --model: predictions until (ISO time, UTC).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@fail_cleanly
def labels_agreement(
    data: Path | None, item_col: str, annotator_col: str, label_col: str, as_json: bool, **window: Any
) -> None:
    """Inter-annotator agreement: Krippendorff's alpha, Fleiss' kappa, Cohen's kappa per pair, per annotator.

    DATA is a table with one row per label (CSV, TSV, Parquet, JSON lines); or, with --clickhouse
    and --model, the labels that name their annotator on that model's predictions.
    """
    from driftline.labeling.agreement import summary

    if data is not None:
        rows = _label_rows_from_file(data, item_col, annotator_col, label_col)
    elif window["clickhouse"] and window["model"]:
        rows = _label_rows_from_clickhouse(**window)
    else:
        raise ConfigError("give DATA (a file of item, annotator, label rows), or --clickhouse with --model")
    if not rows:
        raise ConfigError("no labels with an annotator to compare")
    result = summary(*zip(*rows, strict=True))
    click.echo(strict_dumps(result, indent=2) if as_json else _agreement_text(result))


def _label_rows_from_file(path: Path, item: str, annotator: str, label: str) -> list[tuple[str, str, str]]:
    _need_audit_extra()
    from driftline.labeling.audit import read_table

    df = read_table(path)
    missing = [c for c in (item, annotator, label) if c not in df.columns]
    if missing:
        raise ConfigError(
            f"{path} has no column {', '.join(missing)} (columns: {', '.join(map(str, df.columns))}); "
            "name them with --item, --annotator and --label"
        )
    df = df.dropna(subset=[item, annotator, label])
    return list(zip(df[item].astype(str), df[annotator].astype(str), df[label].astype(str), strict=True))


def _label_rows_from_clickhouse(
    clickhouse: str, model: str, since: str | None, until: str | None
) -> list[tuple[str, str, str]]:
    from driftline.sinks.clickhouse import ClickHouseSink

    settings = Settings.from_env(clickhouse=clickhouse)
    sink = ClickHouseSink(settings)
    db = settings.clickhouse_database
    try:
        _require_model(sink.client, db, model)
        rows = sink.client.query(
            f"""SELECT l.event_id, l.annotator, l.label_norm
                FROM (SELECT event_id FROM {db}.predictions FINAL WHERE model = {{m:String}}
                        AND ts >= parseDateTime64BestEffort({{s:String}}, 3, 'UTC')
                        AND ts < parseDateTime64BestEffort({{u:String}}, 3, 'UTC')) AS p
                INNER JOIN (SELECT event_id, annotator, label_norm FROM {db}.labels FINAL WHERE annotator != '')
                  AS l ON p.event_id = l.event_id""",
            parameters={"m": model, "s": since or "1970-01-01", "u": until or "2200-01-01"},
        ).result_rows
    finally:
        sink.close()
    return [(str(e), str(a), str(v)) for e, a, v in rows]


def _agreement_text(r: dict[str, Any]) -> str:
    def num(value: float) -> str:
        return "n/a (no item with two labels, or one label only)" if value != value else f"{value:.3f}"

    lines = [
        f"{len(r['annotators'])} annotators, {r['items']} items ({r['multi_labelled_items']} with two or more "
        f"labels), labels {', '.join(r['labels'])}",
        f"Krippendorff's alpha (nominal): {num(r['krippendorff_alpha'])}",
        f"Fleiss' kappa ({r['fleiss_items']} items with {r['fleiss_ratings_per_item']} labels each): "
        f"{num(r['fleiss_kappa'])}",
        "Cohen's kappa per pair (items both labelled):",
        *[f"  {p['pair']:<30} {num(p['cohen_kappa'])}  ({p['items']} items)" for p in r["cohen_kappa"]],
        "Agreement with the other annotators' majority:",
        *[
            f"  {a['annotator']:<30} {num(a['agreement'])}  ({a['compared']} of {a['labels']} labels compared)"
            for a in r["annotator_agreement"]
        ],
    ]
    return "\n".join(lines)


@labels.command("requests")
@click.option("--model", required=True)
@clickhouse_option
@fail_cleanly
def labels_requests(model: str, **flags: Any) -> None:
    """How the active-learning loop closes: requests, answered share, time to answer, accuracy on them."""
    from driftline.sinks.clickhouse import ClickHouseSink
    from driftline.streams.label_metrics import CONSENSUS_LABELS

    settings = Settings.from_env(**flags)
    sink = ClickHouseSink(settings)
    db = settings.clickhouse_database
    try:
        rows = sink.client.query(
            f"""SELECT r.version, r.strategy, count(), countIf(l.event_id != ''),
                       quantileIf(0.5)(dateDiff('second', r.ts, l.ts), l.event_id != ''),
                       avgIf(toString(toUInt8(p.score >= 0.5)) = l.label, l.event_id != '')
                FROM {db}.labeling_requests AS r FINAL
                LEFT JOIN ({CONSENSUS_LABELS.format(db=db)}) AS l ON r.event_id = l.event_id
                LEFT JOIN (SELECT event_id, score FROM {db}.predictions FINAL) AS p ON r.event_id = p.event_id
                WHERE r.model = {{m:String}} GROUP BY r.version, r.strategy ORDER BY r.version
                SETTINGS join_use_nulls = 0""",
            parameters={"m": model},
        ).result_rows
    finally:
        sink.close()
    if not rows:
        click.echo(f"no labeling requests for {model}: add `labeling:` to its monitor spec")
    for version, strategy, asked, answered, delay, accuracy in rows:
        click.echo(
            f"{model} {version} ({strategy}): {asked} asked, {answered} answered ({answered / asked:.0%}), "
            f"median time to answer {delay:.0f} s, model accuracy on them {accuracy:.3f}"
        )


def _augment(df: Any, label: str | None, path: Path, target: float, cap: float, ignore: list[str]) -> dict[str, Any]:
    """SMOTE rows for the scarce classes of `label`, written with a `synthetic` flag; what changed."""
    import numpy as np
    import pandas as pd

    from driftline.labeling.augment import smote

    if not label:
        raise ConfigError("--augment needs --label (the class column)")
    data = df[df[label].notna()].reset_index(drop=True)
    cols = [c for c in data.columns if c not in (label, *ignore)]
    numeric = [bool(pd.api.types.is_numeric_dtype(data[c])) for c in cols]
    codes, y = np.unique(data[label].astype(str), return_inverse=True)
    x = np.column_stack(
        [
            data[c].to_numpy(dtype=np.float64) if n else pd.factorize(data[c])[0].astype(np.float64)
            for c, n in zip(cols, numeric, strict=True)
        ]
    )
    out = smote(np.nan_to_num(x), y, target_share=target, max_synthetic_share=cap, numeric=numeric)
    extra = out.x[out.synthetic]
    made = pd.DataFrame(
        {
            c: (extra[:, j] if n else data[c].to_numpy()[out.parents[out.synthetic]])
            for j, (c, n) in enumerate(zip(cols, numeric, strict=True))
        }
    )
    made[label] = codes[out.y[out.synthetic]]
    result = pd.concat([data.assign(synthetic=False), made.assign(synthetic=True)], ignore_index=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    if str(path).endswith(".parquet"):
        result.to_parquet(path)
    else:
        result.to_csv(path, index=False)
    after = result[label].astype(str).value_counts(normalize=True)
    return {
        "method": "SMOTE",
        "path": str(path),
        "synthetic": int(out.synthetic.sum()),
        "synthetic_share": float(out.synthetic.mean()),
        "cap": cap,
        "after": {str(k): float(v) for k, v in after.items()},
    }
