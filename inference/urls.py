from django.urls import path
from django.views.generic import TemplateView

from inference.views import curation, jobs, operations, search, surveys, tasks

app_name = "inference"
urlpatterns = [
    path("", search.search, name="search"),
    path("search/result/", search.search_result, name="search-result"),
    path("pipeline/", search.pipeline, name="pipeline"),
    path("help/", TemplateView.as_view(template_name="inference/help.html"), name="help"),
    path("batch/", jobs.batch, name="batch"),
    path("jobs/<uuid:public_id>/", jobs.job, name="job"),
    path("jobs/<uuid:public_id>/progress/", jobs.job_progress, name="job-progress"),
    path("jobs/<uuid:public_id>/cancel/", jobs.job_cancel, name="job-cancel"),
    path("surveys/", surveys.surveys, name="surveys"),
    path("surveys/<int:pk>/", surveys.survey, name="survey"),
    path("surveys/<int:pk>/progress/", surveys.survey_progress, name="survey-progress"),
    path("surveys/<int:pk>/cancel/", surveys.survey_cancel, name="survey-cancel"),
    path(
        "surveys/<int:pk>/candidates.csv", surveys.survey_download, {"what": "candidates"}, name="survey-candidates-csv"
    ),
    path("surveys/<int:pk>/all.csv", surveys.survey_download, {"what": "all"}, name="survey-all-csv"),
    path("surveys/<int:pk>/candidates.vot", surveys.survey_votable, name="survey-candidates-votable"),
    path("tasks/", tasks.tasks, name="tasks"),
    path("tasks/<slug:name>/", tasks.task, name="task"),
    path("tasks/<slug:name>/publish/", tasks.task_publish, name="task-publish"),
    path("curation/", curation.queue, name="curation"),
    path("curation/<slug:task>/<int:spectrum_id>/", curation.item, name="curation-item"),
    path("operations/", operations.operations, name="operations"),
    path("operations/<int:pk>/", operations.operation, name="operation"),
    path("operations/<int:pk>/progress/", operations.operation_progress, name="operation-progress"),
    path("operations/<int:pk>/<str:decision>/", operations.operation_decide, name="operation-decide"),
]
