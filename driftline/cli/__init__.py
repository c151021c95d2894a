"""The `driftline` command: one module per command family, each a thin layer over the library.

=============  ====================================================================
module         commands
=============  ====================================================================
``run``        worker, broker, demo, simulate, kcat
``data``       migrate, counts, profile build, metrics, report
``control``    models, silences, subscriptions, alerts, grafana
``labels``     audit, review, labels
``offline``    offline (train, federated, privacy, gate, export, explain, ...)
=============  ====================================================================
"""

from __future__ import annotations

import click

from driftline.cli import control, data, labels, offline, run


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="driftline")
def main() -> None:
    """driftline: real-time ML monitoring on Kafka and ClickHouse."""


for _command in (
    run.worker,
    run.broker,
    run.demo,
    run.simulate,
    run.kcat,
    data.migrate,
    data.counts,
    data.profile,
    data.metrics,
    data.report,
    control.models,
    control.silences,
    control.subscriptions,
    control.alerts,
    control.grafana,
    labels.audit_cmd,
    labels.review_cmd,
    labels.labels,
    offline.offline,
):
    main.add_command(_command)

__all__ = ["main"]

if __name__ == "__main__":
    main()
