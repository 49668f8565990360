"""`manage.py usage_rollup [--from DAY] [--to DAY] [--expire]`: the usage rollups, here.

Without dates it rolls up every past day that has no final rollup yet (what the
hourly task does). With `--from` (and `--to`, default yesterday) it rolls up each day
of that range again, replacing its rows; a day rolled up before it ended (today) is
not final, and the dashboard keeps reading it from raw events. `--expire` then
deletes the raw events older than `STATELAB_USAGE_RETENTION_DAYS` (days rolled up only).
"""

from datetime import date, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from backend.usage.services import usage_events_expire, usage_rollup_due, usage_rollup_range


def _day(raw: str | None, name: str) -> date | None:
    if raw is None:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError as exc:
        raise CommandError(f"{name} must be a date as YYYY-MM-DD, not '{raw}'.") from exc


class Command(BaseCommand):
    help = "Roll up raw usage events into daily figures (and apply the retention)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--from", dest="first", help="first day (YYYY-MM-DD)")
        parser.add_argument("--to", dest="last", help="last day (YYYY-MM-DD; default yesterday)")
        parser.add_argument(
            "--expire",
            action="store_true",
            help="then delete raw events older than STATELAB_USAGE_RETENTION_DAYS",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        first = _day(options["first"], "--from")
        last = _day(options["last"], "--to")
        if last is not None and first is None:
            raise CommandError("--to needs --from.")
        if first is None:
            days = usage_rollup_due()
        else:
            last = last or timezone.now().date() - timedelta(days=1)
            if last < first:
                raise CommandError("--to must not be before --from.")
            days = usage_rollup_range(first=first, last=last)
        if days:
            self.stdout.write(f"Rolled up {len(days)} day(s), {days[0]} to {days[-1]}.")
        else:
            self.stdout.write("No day was due for a rollup.")
        if options["expire"]:
            done = usage_events_expire()
            self.stdout.write(
                f"Deleted {done['research_events']} research events and "
                f"{done['request_events']} request events past the retention."
            )
