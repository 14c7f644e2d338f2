from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.authtoken.views import ObtainAuthToken

from galspec_site.throttling import LoginRateThrottle
from inference.api import jobs as job_api
from inference.api import operations as operation_api
from inference.api import search as search_api
from inference.api import surveys as survey_api
from kb import api as kb_api

api = (
    [
        path("search/", search_api.SearchApi.as_view(), name="search"),
        path("jobs/", job_api.JobListApi.as_view(), name="jobs"),
        path("jobs/<uuid:public_id>/", job_api.JobDetailApi.as_view(), name="job-detail"),
        path("jobs/<uuid:public_id>/results/", job_api.JobResultsApi.as_view(), name="job-results"),
        path("jobs/<uuid:public_id>/cancel/", job_api.JobCancelApi.as_view(), name="job-cancel"),
        path("surveys/", survey_api.SurveyListApi.as_view(), name="surveys"),
        path("surveys/<int:pk>/", survey_api.SurveyDetailApi.as_view(), name="survey-detail"),
        path("surveys/<int:pk>/cancel/", survey_api.SurveyCancelApi.as_view(), name="survey-cancel"),
        path("surveys/<int:pk>/candidates/", survey_api.SurveyCandidatesApi.as_view(), name="survey-candidates"),
        path("spectra/", kb_api.SpectrumListApi.as_view(), name="spectra"),
        path("spectra/<int:pk>/", kb_api.SpectrumDetailApi.as_view(), name="spectrum-detail"),
        path("spectra/<int:pk>/flux/", kb_api.SpectrumFluxApi.as_view(), name="spectrum-flux"),
        path("tasks/", kb_api.TaskListApi.as_view(), name="tasks"),
        path("tasks/<slug:name>/", kb_api.TaskDetailApi.as_view(), name="task-detail"),
        path("knowledge-bases/", operation_api.KnowledgeBaseListCreateApi.as_view(), name="knowledge-bases"),
        path("knowledge-bases/<int:pk>/", kb_api.KnowledgeBaseDetailApi.as_view(), name="knowledge-base-detail"),
        path("knowledge-bases/<int:pk>/entries/", kb_api.KBEntryListApi.as_view(), name="knowledge-base-entries"),
        path("operations/<int:pk>/", operation_api.OperationDetailApi.as_view(), name="operation-detail"),
        path("flags/", kb_api.FlagListApi.as_view(), name="flags"),
        path("flags/<int:pk>/withdraw/", kb_api.FlagWithdrawApi.as_view(), name="flag-withdraw"),
        path("curation/decisions/", kb_api.CurationDecisionApi.as_view(), name="curation-decisions"),
        path("curation/agreement/", kb_api.AgreementApi.as_view(), name="curation-agreement"),
        path("audit/", kb_api.AuditListApi.as_view(), name="audit"),
        path("auth/token/", ObtainAuthToken.as_view(throttle_classes=[LoginRateThrottle]), name="token"),
        path("schema/", SpectacularAPIView.as_view(), name="schema"),
        path("docs/", SpectacularSwaggerView.as_view(url_name="api:schema"), name="docs"),
    ],
    "api",
)

urlpatterns = [
    path("favicon.ico", RedirectView.as_view(url=static("img/favicon.svg"), permanent=True)),
    path("admin/", admin.site.urls),
    path("api/v1/", include(api)),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", include("inference.urls")),
    path("", include("kb.urls")),
]
