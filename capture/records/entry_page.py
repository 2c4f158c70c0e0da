"""The data-entry page of one form record: what a request shows, and what its POST saves.

`records.views.entry_page` asks capture.studies.access for the study and subject, then hands
them here: `EntryPage` reads the record and decides what this user may do, `submit` saves a
POST through the record service (or keeps what went wrong: field errors, a missing reason, an
edit conflict to resolve), and `context` is the template's. Nothing here writes but
`services.save_record`.

Disclosure (issue 12) decides every value shown: a de-identified user gets shifted dates and
hidden identifiers, a page that never saves, no raw values in `__base` or the events script, and
calculations as the server stored them (the browser does not recompute them). The form's HTML
is the compiled skeleton's (entry.py); the links and conflict panels are the templates'.
"""

from __future__ import annotations

from functools import lru_cache

from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, Exists, OuterRef
from django.http import Http404
from django.template.loader import render_to_string

from capture.files import entry as file_fields
from capture.studies.disclosure import Disclosure

from . import entry, services
from .compiled import compiled
from .models import FormRecord, Query, Status, SubjectLock

READ_ONLY = "Your role may read this form but not change it."
DEIDENTIFIED_READ_ONLY = (
    "Your role sees this study de-identified (dates shifted, identifiers hidden), so it may read "
    "forms but not save them: a save would store the shifted values. Ask a study administrator "
    "for a role that may view identifiers to enter data."
)


def as_int(text, default):
    try:
        return int(text)
    except (TypeError, ValueError):
        return default


def find_record(subject, slot, form_name: str, instance: int) -> FormRecord | None:
    """The record of this slot and instance, with whether it has open queries; None if not saved yet."""
    # Unique, so no ORDER BY (the Meta ordering would join subject, study, arm and schedule).
    open_queries = Query.objects.filter(record=OuterRef("pk")).exclude(status=Query.CLOSED)
    found = (
        FormRecord.objects.select_related("updated_by")
        .filter(subject=subject, event=slot.event, form_name=form_name, instance=instance)
        .annotate(has_open_queries=Exists(open_queries))
        .order_by()[:1]
    )
    record = next(iter(found), None)
    if record is not None:
        # Rows loaded already; a record of an older form version loads its own when asked.
        record.subject, record.event = subject, slot.event
        if record.form_id == slot.event_form.form_id:
            record.form = slot.event_form.form
    return record


@lru_cache(maxsize=4096)
def field_links(name: str, open_queries: int, can_query: bool) -> str:
    """A saved field's history, open-query and raise-a-query links (records/field_links.html).

    Rendered once per (field, count, permission) in a process: the template costs ~35 µs a field,
    1.5 ms on a 40-item form, which is what the compiled skeleton exists to avoid."""
    context = {"name": name, "open": open_queries, "can_query": can_query}
    return render_to_string("records/field_links.html", context)


class EntryPage:
    """One request's entry page for `instance` of the form at `slot` (resolved by the caller)."""

    def __init__(self, user, study_access, subject, slot, form_name: str, instance: int, *, lock=False):
        """`lock`: the page is for a POST, inside the transaction that saves it; a user who may
        save reads the record locked (services.lock_record), and the save reads it no more."""
        if instance < 1 or (instance > 1 and not slot.event_form.repeating):
            raise Http404("This form does not repeat here.")
        self.user, self.study, self.subject, self.slot = user, study_access.study, subject, slot
        self.form_name, self.instance = form_name, instance
        # The subject is visible, so its site is: `can` here means `access.may_act_at_site`.
        self.can = study_access.can
        self.disclosure = Disclosure.for_user(user, self.study)
        # A de-identified user sees shifted dates and no identifiers: whatever they sent back
        # would be those values, so the page never saves for them, whatever their role allows.
        self.deidentified_entry = self.can("enter_data") and not self.disclosure.identified
        self.may_enter = self.can("enter_data") and self.disclosure.identified
        self.locked = None
        if lock and self.may_enter:
            self.locked = services.lock_record(subject, slot, form_name, instance)
            self.record = self.locked.record
        else:
            self.record = find_record(subject, slot, form_name, instance)
        # The slot's form instance when it is the record's version, so that the record service
        # (given the slot) compiles the same instance.
        record = self.record
        self.definition = slot.event_form.form
        if record is not None and record.form_id != slot.event_form.form_id:
            self.definition = record.form
        c = self.c = compiled(self.definition)
        self.missing = list(self.study.missing_codes)
        self.missing_set = frozenset(self.study.missing_code_set())
        self.masked = {i["name"] for i in c.items if self.disclosure.hides(c.elements[i["element"]])}
        self.events = services.other_events(subject, self.definition, exclude=record, compiled_form=c)
        self.stored = record.data if record else {}
        self.values, self.rows = entry.display_values(c, self.stored)
        self.version = record.version if record else None
        self.base = self.stored
        self.status = record.status if record else Status.INCOMPLETE
        self.reason = self.banner = ""
        self.errors: dict[str, str] = {}
        self.conflicts: dict = {}  # key -> (mine, theirs) of an edit conflict

    # ------------------------------------------------------------------ saving a POST

    def submit(self, post, files) -> FormRecord | None:
        """Save the POST; the saved record, or None with errors, a banner or conflicts to show.
        403, before anything is written, for a role that may not save here."""
        if not self.may_enter:
            raise PermissionDenied(DEIDENTIFIED_READ_ONLY if self.deidentified_entry else READ_ONLY)
        self._read(post, files)
        if self.errors:
            return None
        try:
            return services.save_record(
                actor=self.user,
                subject=self.subject,
                event_name=self.slot.event.name,
                form_name=self.form_name,
                values=entry.submitted_record(self.values, self.rows),
                status=self.status,
                instance=self.instance,
                expected_version=as_int(post.get("__version"), None),
                reason=self.reason,
                slot=self.slot,
                locked=self.locked,
            )
        except services.RecordValidationError as exc:
            self.errors = exc.field_errors
            self.banner = "The form was not saved: correct the fields marked below."
        except services.ReasonRequiredError as exc:
            self.errors["__reason"] = exc.messages[0]
            self.banner = "The form was not saved: it is Complete, so a change needs a reason."
        except services.EditConflictError as exc:
            self._merge(exc.current, entry.unsign(post.get("__base", "")) or {})
        except services.RecordLockedError as exc:
            self.banner = f"Not saved: {exc}"
        except ValidationError as exc:
            self.banner = "Not saved: " + " ".join(exc.messages)
        return None

    def _read(self, post, files) -> None:
        """The submitted values, status and reason, and the choices made in an earlier conflict."""
        c = self.c
        uploads = file_fields.Uploads(self.user, self.subject, self.stored)
        self.values, self.rows = entry.read_post(c, post, files, store_file=uploads.store)
        self.errors.update(uploads.errors)
        for key in uploads.foreign(self.values, self.rows):
            self.errors[key] = "This is not a file of this record: upload the file again."
        for name in self.masked:
            # The page never had the identifier, so it cannot send it: keep the stored one.
            self.values[name] = entry.display(self.stored.get(name))
        self.status = as_int(post.get("__status"), Status.INCOMPLETE)
        self.reason = post.get("__reason", "").strip()
        pending = entry.unsign(post.get("__conflicts", "")) or {}
        for key, theirs in pending.get("theirs", {}).items():
            choice = post.get(f"__keep__{key}")
            if choice == "theirs":
                (self.rows if key in c.repeating else self.values)[key] = theirs
            elif choice != "mine":
                self.errors[key] = "Both you and someone else changed this field: choose which value to keep."
                self.conflicts[key] = (self.values.get(key, self.rows.get(key)), theirs)

    def _merge(self, current: FormRecord, base: dict) -> None:
        """Someone saved first: their changes to other fields join this user's, and a field both
        changed becomes a choice."""
        mine = (self.values, self.rows)
        self.values, self.rows, self.conflicts = entry.merge(
            self.c, base, mine, current.data, self.missing_set
        )
        who = current.updated_by.get_username() if current.updated_by else "someone"
        self.banner = (
            f"{who} saved this form (version {current.version}) while you were editing. Their changes "
            "to other fields are in the form now"
            + ("; choose yours or theirs where you both changed a field" if self.conflicts else "")
            + ", then save again."
        )
        self.version, self.base, self.record = current.version, current.data, current

    # ------------------------------------------------------------------ showing the page

    def context(self) -> dict:
        """The template's context: the form filled for this user, and the page around it."""
        record, can, disclosure, subject = self.record, self.can, self.disclosure, self.subject
        theirs, panels = self._conflict_panels()
        hidden, computed = entry.visible_state(
            self.c, self.values, self.rows, events=self.events, missing=self.missing_set
        )
        state = self._record_state()
        # A page that saves shows calculations as a save would store them, and the browser keeps
        # them up to date. One that cannot save (a read-only role, a locked form, a de-identified
        # page) shows the values the server stored, and the browser does not recompute them: the
        # values they read may be hidden or shifted on the page, or another event's may have
        # changed since (an export gives the stored value too).
        live = state["can_edit"] and not self.masked
        if live:
            self._show_calculations(computed)
        open_queries = self._open_queries()
        values, rows = entry.form_values(self.c, disclosure, subject, self.values, self.rows)
        values, rows = entry.dates_as_typed(self.c, values, rows)
        form_html, skeleton = entry.render_form(
            self.c,
            self.definition.spec,
            missing=self.missing,
            values=values,
            rows=rows,
            hidden=hidden,
            errors=self.errors,
            masked=self.masked,
            links=self._links(open_queries, can_query=record is not None and can("verify_data")),
            conflicts=panels,
            file_html=file_fields.shown(self.study, disclosure.identified, self.may_enter),
        )
        return {
            "study": self.study,
            "subject": subject,
            "event": self.slot.event,
            "definition": self.definition,
            "record": record,
            "instance": self.instance,
            "repeating": self.slot.event_form.repeating,
            "form_html": form_html,
            "logic_json": skeleton.logic_json,
            # Other events' values feed the browser's calculations; a de-identified page runs
            # none, and must not carry another form's identifiers or real dates.
            "events_json": entry.json_script((self.events or {}) if disclosure.identified else {}),
            "row_templates": skeleton.row_html,
            "deidentified": not disclosure.identified,
            "server_logic": not live,
            "deidentified_entry": self.deidentified_entry,
            "may_enter": self.may_enter,
            "saved_at": disclosure.timestamp(subject, record.updated_at) if record else None,
            # Signed, not encrypted: it would carry the record's raw values to a de-identified
            # page, which never posts anyway.
            "base_token": entry.sign(self.base) if disclosure.identified else "",
            "conflicts_token": entry.sign({"theirs": theirs}) if self.conflicts else "",
            **state,
            **self._save_bar(),
            "open_query_count": sum(open_queries.values()),
        }

    def _conflict_panels(self) -> tuple[dict, dict]:
        """For each field both users changed: their value (signed into the page) and its panel."""
        if not self.conflicts:
            return {}, {}
        record, c = self.record, self.c
        who = record.updated_by.get_username() if record and record.updated_by else "someone"
        current_values, current_rows = entry.display_values(c, record.data if record else {})
        theirs, panels = {}, {}
        for key, (mine, _theirs) in self.conflicts.items():
            theirs[key] = current_rows.get(key) if key in c.repeating else current_values.get(key, "")
            panels[key] = render_to_string(
                "records/conflict_panel.html",
                {
                    "key": key,
                    "who": who,
                    "mine": entry.shown(c, key, mine),
                    "theirs": entry.shown(c, key, theirs[key]),
                },
            )
        return theirs, panels

    def _show_calculations(self, computed: dict) -> None:
        for lg in self.c.logic:
            if lg.calculation is None:
                continue
            if lg.group is None:
                self.values[lg.name] = entry.display(computed.get(lg.name))
                continue
            computed_rows = computed.get(lg.group) or []
            for index, row in enumerate(self.rows.get(lg.group, [])):
                if index < len(computed_rows):
                    row[lg.name] = entry.display(computed_rows[index].get(lg.name))

    def _open_queries(self) -> dict[str, int]:
        """Open queries by field. `find_record` says whether there are any; the record of an edit
        conflict comes from the service, so it is asked."""
        record = self.record
        if record is None or not getattr(record, "has_open_queries", True):
            return {}
        found = (
            Query.objects.filter(record=record)
            .exclude(status=Query.CLOSED)
            .values_list("field")
            .annotate(n=Count("pk"))
        )
        return dict(found)

    def _links(self, open_queries: dict, *, can_query: bool) -> dict[str, str]:
        if self.record is None:
            return {}
        return {
            item["name"]: field_links(item["name"], open_queries.get(item["name"], 0), can_query)
            for item in self.c.items
            if not item["repeating"]
        }

    def _record_state(self) -> dict:
        """Locks, signatures and a repeating form's instances."""
        record, subject, can = self.record, self.subject, self.can
        # Locking a subject sets `locked` on each of its records, so an unlocked record needs no
        # look-up of the subject's lock; a new record does.
        subject_lock = None
        if record is None or record.locked:
            subject_lock = SubjectLock.objects.filter(subject=subject).select_related("locked_by").first()
        locked = bool(record and record.locked) or subject_lock is not None
        instances = []
        if self.slot.event_form.repeating:
            instances = list(
                FormRecord.objects.filter(subject=subject, event=self.slot.event, form_name=self.form_name)
                .order_by("instance")
                .values_list("instance", "status")
            )
        complete = record is not None and record.status == Status.COMPLETE
        signatures = (
            list(record.signatures.select_related("signer")) if complete and record is not None else []
        )
        for signature in signatures:
            # The time as this user may see it, for the template (not a model field).
            signature.shown_at = self.disclosure.timestamp(subject, signature.signed_at)  # type: ignore[attr-defined]
        return {
            "instances": instances,
            "can_edit": self.may_enter and not locked,
            "locked": locked,
            "subject_lock": subject_lock,
            "subject_locked_at": self.disclosure.timestamp(subject, subject_lock.locked_at)
            if subject_lock
            else None,
            "can_lock": record is not None and can("lock_records"),
            # services.may_sign: sign_records at the subject's site, which the user sees.
            "can_sign": complete and can("sign_records"),
            "signatures": signatures,
        }

    def _save_bar(self) -> dict:
        return {
            "status": self.status,
            "statuses": Status.choices,
            "version": self.version or "",
            "reason": self.reason,
            "reason_needed": bool(self.record and self.record.status == Status.COMPLETE),
            "reason_error": self.errors.get("__reason", ""),
            "banner": self.banner,
            "error_count": len([k for k in self.errors if k != "__reason"]),
        }
