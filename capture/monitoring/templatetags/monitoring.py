"""`{% monitoring_panel %}`: the entry page's verification and query panel (panel.py)."""

from django import template

from capture.monitoring.panel import panel_context

register = template.Library()


@register.inclusion_tag("monitoring/panel.html", takes_context=True)
def monitoring_panel(context):
    record, subject = context.get("record"), context.get("subject")
    found = panel_context(context["request"].user, record, subject) if subject is not None else {}
    return {
        **found,
        "study": context.get("study"),
        "subject": subject,
        "event": context.get("event"),
        "definition": context.get("definition"),
        "instance": context.get("instance"),
        "csrf_token": context.get("csrf_token"),
    }
