import os

from django.core.wsgi import get_wsgi_application

from galspec_site.startup import secret_key_check

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "galspec_site.settings")
application = get_wsgi_application()
secret_key_check("a web server")
