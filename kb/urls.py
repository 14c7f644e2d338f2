from django.urls import path

from kb import views

app_name = "kb"
urlpatterns = [
    path("spectra/", views.spectra, name="spectra"),
    path("spectra/<int:pk>/", views.spectrum_detail, name="spectrum-detail"),
    path("spectra/<int:pk>/spectrum.csv", views.spectrum_csv, name="spectrum-csv"),
    path("spectra/<int:pk>/spectrum.fits", views.spectrum_fits, name="spectrum-fits"),
    path("kb/", views.entries, name="entries"),
    path("flag/<slug:task>/<int:spectrum_id>/", views.flag, name="flag"),
    path("flag/<slug:task>/<int:spectrum_id>/withdraw/", views.flag_withdrawal, name="flag-withdraw"),
    path("audit/", views.audit, name="audit"),
]
