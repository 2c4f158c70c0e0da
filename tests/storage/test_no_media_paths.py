"""No code outside the storage layer builds a path from MEDIA_ROOT: with several hosts there is no
shared media folder, and a file written there is lost to every other host."""

import ast
from pathlib import Path

CAPTURE = Path(__file__).resolve().parents[2] / "capture"
# The storage layer itself, and the settings that configure it.
ALLOWED = {"storage.py", "storage_settings.py"}


def uses_of_media_root(source: str) -> list[int]:
    """Lines whose code reads MEDIA_ROOT (settings.MEDIA_ROOT, a bare name, getattr(…, "MEDIA_ROOT"));
    prose in docstrings and help texts is not code."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if (
            (isinstance(node, ast.Attribute) and node.attr == "MEDIA_ROOT")
            or (isinstance(node, ast.Name) and node.id == "MEDIA_ROOT")
            or (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in ("getattr", "setattr")
                and any(isinstance(a, ast.Constant) and a.value == "MEDIA_ROOT" for a in node.args)
            )
        ):
            lines.append(node.lineno)
    return sorted(set(lines))


def test_only_the_storage_layer_and_settings_read_media_root():
    offenders = []
    for path in sorted(CAPTURE.rglob("*.py")):
        relative = path.relative_to(CAPTURE)
        if relative.parts[0] == "settings" or "migrations" in relative.parts or str(relative) in ALLOWED:
            continue
        source = path.read_text(encoding="utf-8")
        text = source.splitlines()
        offenders += [f"capture/{relative}:{n}: {text[n - 1].strip()}" for n in uses_of_media_root(source)]
    assert not offenders, (
        "Save, open and list files through capture/storage.py (named storages), not under MEDIA_ROOT:\n"
        + "\n".join(offenders)
    )


def test_the_check_finds_every_way_of_reading_it():
    source = (
        '"""Files are kept under MEDIA_ROOT."""\n'
        "a = Path(settings.MEDIA_ROOT) / name\n"
        "from django.conf.settings import MEDIA_ROOT\n"
        "b = MEDIA_ROOT\n"
        'c = getattr(settings, "MEDIA_ROOT")\n'
        'd = models.CharField(help_text="path under MEDIA_ROOT")\n'
    )
    assert uses_of_media_root(source) == [2, 4, 5]


def test_no_model_describes_its_file_as_a_path_under_media_root():
    # The admin and the schema show help texts: a file's name is a name in a named storage
    # (capture/storage.py), which on object storage is no path under MEDIA_ROOT at all.
    from django.apps import apps

    described = [
        f"{model._meta.label}.{field.name}: {field.help_text}"
        for model in apps.get_models()
        if model.__module__.startswith("capture.")
        for field in model._meta.get_fields()
        if "MEDIA_ROOT" in str(getattr(field, "help_text", ""))
    ]
    assert not described, f"Say which named storage holds the file (capture/storage.py): {described}"
