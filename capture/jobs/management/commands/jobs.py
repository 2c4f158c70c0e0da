from django.core.management.base import BaseCommand

from capture.jobs.models import Job
from capture.jobs.services import recover_stale_jobs


class Command(BaseCommand):
    help = (
        "List recent background jobs. With --recover, first mark jobs whose worker died (no progress "
        "for 5 minutes) as failed, so they can be run again."
    )

    def add_arguments(self, parser):
        parser.add_argument("--recover", action="store_true")
        parser.add_argument("--limit", type=int, default=20)

    def handle(self, *args, recover, limit, **options):
        if recover:
            self.stdout.write(f"Marked {recover_stale_jobs()} stale job(s) failed.")
        for job in Job.objects.select_related("study")[:limit]:
            self.stdout.write(f"{job.pk}  {job.status:<9} {job.study.slug:<20} {job.title}  {job.error[:80]}")
