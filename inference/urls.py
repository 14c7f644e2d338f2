from django.urls import path

from inference import curation_views, operation_views, survey_views, views

app_name = "inference"
urlpatterns = [
    path("", views.search, name="search"),
    path("search/result/", views.search_result, name="search-result"),
    path("pipeline/", views.pipeline, name="pipeline"),
    path("batch/", views.batch, name="batch"),
    path("jobs/<uuid:public_id>/", views.job, name="job"),
    path("jobs/<uuid:public_id>/progress/", views.job_progress, name="job-progress"),
    path("jobs/<uuid:public_id>/cancel/", views.job_cancel, name="job-cancel"),
    path("surveys/", survey_views.surveys, name="surveys"),
    path("surveys/<int:pk>/", survey_views.survey, name="survey"),
    path("surveys/<int:pk>/progress/", survey_views.survey_progress, name="survey-progress"),
    path("surveys/<int:pk>/cancel/", survey_views.survey_cancel, name="survey-cancel"),
    path("surveys/<int:pk>/candidates.csv", survey_views.survey_download, {"what": "candidates"}, name="survey-candidates-csv"),
    path("surveys/<int:pk>/all.csv", survey_views.survey_download, {"what": "all"}, name="survey-all-csv"),
    path("curation/", curation_views.queue, name="curation"),
    path("curation/<slug:task>/<int:spectrum_id>/", curation_views.item, name="curation-item"),
    path("operations/", operation_views.operations, name="operations"),
    path("operations/<int:pk>/", operation_views.operation, name="operation"),
    path("operations/<int:pk>/progress/", operation_views.operation_progress, name="operation-progress"),
    path("operations/<int:pk>/<str:decision>/", operation_views.operation_decide, name="operation-decide"),
]
