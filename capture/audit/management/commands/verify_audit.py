from django.core.management.base import BaseCommand, CommandError

from capture.audit.services import verify_all


class Command(BaseCommand):
    help = (
        "Verify the audit trail's hash chains. Reports every event that was edited, inserted, "
        "reordered or deleted, and exits with status 1 if any was."
    )

    def handle(self, *args, **options):
        count, problems = verify_all()
        for problem in problems:
            self.stderr.write(str(problem))
        if problems:
            raise CommandError(f"Audit trail damaged: {len(problems)} problem(s) in {count} events.")
        self.stdout.write(self.style.SUCCESS(f"Audit trail intact: {count} events verified."))
