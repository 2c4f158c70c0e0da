from django import forms
from django.http import HttpResponse
from django.shortcuts import redirect, render

from .models import PlainVisit, kind

CHOICES = [("", "—"), ("1", "One"), ("2", "Two"), ("3", "Three"), ("4", "Four")]


def hello(request):
    return HttpResponse("Hello, world")


class PlainForm(forms.ModelForm):
    class Meta:
        model = PlainVisit
        fields = [f"f{n:02d}" for n in range(40)]
        widgets = {f"f{n:02d}": forms.RadioSelect(choices=CHOICES) for n in range(40) if kind(n) == "choice"}
        widgets.update(
            {f"f{n:02d}": forms.DateInput(attrs={"type": "date"}) for n in range(40) if kind(n) == "date"}
        )


def plain_form(request):
    form = PlainForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        form.save()
        return redirect(request.path)
    return render(request, "ecrf_benchsite/plain.html", {"form": form})
