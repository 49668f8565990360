"""`manage.py evict_matches [--keep-days D] [--budget-mb M]`: the match store's housekeeping.

Runs `matching.services.match_store_evict` once, here, and says what it removed:
stored results no saved hypothesis pins that went unused for longer than
`STATELAB_MATCH_KEEP_DAYS`, then the least recently used while all results together
exceed `STATELAB_MATCH_STORE_BUDGET_MB`. The options override the two settings for
this run (0 turns a rule off).
"""

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from backend.matching.services import match_store_evict


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} bytes"
    if n < 1 << 20:
        return f"{n / 1024:.1f} KB"
    if n < 1 << 30:
        return f"{n / (1 << 20):.1f} MB"
    return f"{n / (1 << 30):.2f} GB"


class Command(BaseCommand):
    help = (
        "Remove stored match results that no saved hypothesis pins: those unused for too "
        "long, then the least recently used while the store is over its size budget."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--keep-days",
            type=float,
            default=None,
            help="remove results unused for longer than this (default: STATELAB_MATCH_KEEP_DAYS)",
        )
        parser.add_argument(
            "--budget-mb",
            type=float,
            default=None,
            help="size budget of all stored results (default: STATELAB_MATCH_STORE_BUDGET_MB)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        keep_days = options["keep_days"]
        budget_mb = options["budget_mb"]
        for name, value in (("--keep-days", keep_days), ("--budget-mb", budget_mb)):
            if value is not None and value < 0:
                raise CommandError(f"{name} must be 0 (off) or more.")
        if keep_days is None:
            keep_days = float(settings.STATELAB_MATCH_KEEP_DAYS)
        if budget_mb is None:
            budget_mb = float(settings.STATELAB_MATCH_STORE_BUDGET_MB)
        done = match_store_evict(keep_days=keep_days, budget_mb=budget_mb)
        if keep_days > 0:
            self.stdout.write(
                f"Evicted {done['evicted_unused']} match results unused for more than "
                f"{keep_days:g} days."
            )
        else:
            self.stdout.write("No age limit: unused match results are kept.")
        if budget_mb > 0:
            self.stdout.write(
                f"Evicted {done['evicted_over_budget']} match results, least recently used "
                f"first, to keep the store within {budget_mb:g} MB."
            )
        else:
            self.stdout.write("No size budget: the store may grow.")
        self.stdout.write(
            f"Freed {_size(done['bytes_freed'])}; {_size(done['stored_bytes'])} of results "
            "stay stored (pinned and pending results are never evicted)."
        )
