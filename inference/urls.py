from django.urls import path

from inference import views

app_name = "inference"
urlpatterns = [
    path("", views.search, name="search"),
    path("search/result/", views.search_result, name="search-result"),
    path("pipeline/", views.pipeline, name="pipeline"),
    path("batch/", views.batch, name="batch"),
    path("jobs/<uuid:public_id>/", views.job, name="job"),
    path("jobs/<uuid:public_id>/progress/", views.job_progress, name="job-progress"),
    path("jobs/<uuid:public_id>/cancel/", views.job_cancel, name="job-cancel"),
]
