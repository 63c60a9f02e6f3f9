"""Django settings for spanbank's local Label Studio: Label Studio's own, minus one outbound fetch.

Loaded by the Label Studio process (its own venv) through DJANGO_SETTINGS_MODULE; spanbank
never imports it. Telemetry, Sentry, the version check, signup and allowed hosts are set
through Label Studio's environment variables (spanbank.labelstudio.server.PRIVATE_SETTINGS); the one
call no variable turns off is `/heidi-tips/`, which the login page requests and the server
answers by fetching a file from GitHub. Here it is answered locally with "no tips".
"""

import os

# Label Studio's settings module reads django.conf.settings while it is being imported (to
# set up Sentry); pointing that inner read at Label Studio's own module, as it would be
# without us, keeps it from seeing this half-imported one.
os.environ["DJANGO_SETTINGS_MODULE"] = "label_studio.core.settings.label_studio"
try:
    from label_studio.core.settings.label_studio import *  # noqa: E402, F403
    from label_studio.core.settings.label_studio import MIDDLEWARE  # noqa: E402
finally:
    os.environ["DJANGO_SETTINGS_MODULE"] = __name__

OFFLINE_PATHS = ("/heidi-tips",)


def offline_paths(get_response):
    """Django middleware: 404 for the paths whose views would fetch from the internet."""
    from django.http import JsonResponse

    def middleware(request):
        if request.path.rstrip("/") in OFFLINE_PATHS:
            return JsonResponse({}, status=404)
        return get_response(request)

    return middleware


MIDDLEWARE = ["spanbank_ls_settings.offline_paths", *MIDDLEWARE]
