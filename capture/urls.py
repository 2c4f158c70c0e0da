from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from capture.accounts.views import LoginView

urlpatterns = [
    path("accounts/login/", LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/", include("capture.accounts.urls")),
    path("admin/", admin.site.urls),
    path("jobs/", include("capture.jobs.urls")),
    path("", include("capture.imports.urls")),
    path("", include("capture.imaging.urls")),
    path("", include("capture.measurements.urls")),
    path("", include("capture.exports.urls")),
    path("", include("capture.api.urls")),
    path("", include("capture.definitions.urls")),
    path("", include("capture.administration.urls")),
    path("", include("capture.web.urls")),
    path("", include("capture.records.urls")),
    path("", include("capture.files.urls")),
    path("", include("capture.monitoring.urls")),
    path("", include("capture.reports.urls")),
    path("", include("capture.measurements.response_urls")),
]
