from django.db import models

# The plain Django reference: a model of 40 fields shaped like the benchmark form.
KINDS = ["choice", "integer", "decimal", "date", "text"]


def kind(n: int) -> str:
    return KINDS[n % len(KINDS)]


class PlainVisit(models.Model):
    class Meta:
        app_label = "ecrf_benchsite"

    def __str__(self) -> str:
        return f"Plain visit {self.pk}"


for _n in range(40):
    _k = kind(_n)
    _field = {
        "choice": models.CharField(max_length=10, blank=True),
        "integer": models.IntegerField(null=True, blank=True),
        "decimal": models.DecimalField(max_digits=8, decimal_places=1, null=True, blank=True),
        "date": models.DateField(null=True, blank=True),
        "text": models.CharField(max_length=100, blank=True),
    }[_k]
    PlainVisit.add_to_class(f"f{_n:02d}", _field)
