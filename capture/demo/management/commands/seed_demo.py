from django.core.management.base import BaseCommand

from capture.demo import study as demo


class Command(BaseCommand):
    help = (
        "Create the demo co-clinical study (3 sites, 60 patients, 20 PDX models, form records) and one "
        "user per role, and print their passwords. Needs `load_definitions` first. If the demo study "
        "exists it is kept and only the demo users' passwords are reset and printed."
    )

    def add_arguments(self, parser):
        parser.add_argument("--patients", type=int, default=60)
        parser.add_argument("--models", type=int, default=20)

    def handle(self, *args, patients, models, **options):
        result = demo.seed(patients=patients, models=models)
        state = "created" if result.created else "already there; passwords reset"
        self.stdout.write(self.style.SUCCESS(f"Demo study '{result.study.name}' {state}."))
        self.stdout.write("Log in at http://127.0.0.1:8000/ as:")
        for username, (role, password) in result.passwords.items():
            self.stdout.write(f"  {username:<18} {password:<20} ({role})")
