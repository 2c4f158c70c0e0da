from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from capture.accounts.system import actor_from_options, add_actor_argument
from capture.definitions.models import Schedule
from capture.studies import services


class Command(BaseCommand):
    help = (
        "Create a study on a loaded schedule, with its sites: "
        "create_study SLUG --name 'My study' --schedule qin_coclinical@1.0 --site BOS='Boston' --site STL='St. Louis'. "
        "Members are then added in the admin (Memberships)."
    )

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--name", required=True)
        parser.add_argument("--schedule", required=True, help="name@version of a loaded schedule")
        parser.add_argument("--site", action="append", default=[], help="CODE=Name, once per site")
        parser.add_argument("--id-pattern", default="{site}-{seq:04d}")
        add_actor_argument(parser)

    def handle(self, *args, slug, name, schedule, site, id_pattern, **options):
        actor = actor_from_options(options, "create_study")
        schedule_name, _, version = schedule.partition("@")
        found = Schedule.objects.filter(name=schedule_name, version=version).first()
        if found is None:
            raise CommandError(f"No schedule {schedule!r} is loaded; run load_definitions first.")
        try:
            with transaction.atomic():
                study = services.create_study(
                    actor=actor, slug=slug, name=name, schedule=found, subject_id_pattern=id_pattern
                )
                for entry in site:
                    code, _, site_name = entry.partition("=")
                    services.add_site(actor=actor, study=study, code=code, name=site_name or code)
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from None
        except PermissionDenied as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(self.style.SUCCESS(f"Created study {study.slug} with {len(site)} site(s)."))
