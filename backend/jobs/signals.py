"""Signals of the jobs app, for apps above it that keep work of their own in flight.

``sweep`` is sent by every worker's background thread each time it has swept for
jobs no broker holds (`services.jobs_resend`, every `STATELAB_JOB_SWEEP_S`). An app
whose jobs fan out into tasks of their own (the shards of a match) connects a
receiver that sends such a task again when its worker died; the receiver returns how
many it sent. The jobs app imports nothing of those apps: the layers stay as they are.
"""

from django.dispatch import Signal

sweep = Signal()
