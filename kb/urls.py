from django.urls import path

from kb import views

app_name = "kb"
urlpatterns = [
    path("", views.home, name="home"),
    path("spectra/<int:pk>/", views.spectrum_detail, name="spectrum-detail"),
]
