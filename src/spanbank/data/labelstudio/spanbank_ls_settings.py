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


LOOPBACK_WEBHOOK_HOSTS = ("127.0.0.1", "localhost")


def _loopback_ok(check):
    """Wrap Label Studio's SSRF check so a webhook may point at a loopback receiver only."""
    from urllib.parse import urlparse

    def wrapped(url, *args, **kwargs):
        if (urlparse(url).hostname or "") in LOOPBACK_WEBHOOK_HOSTS:
            kwargs["block_local_urls"] = False
        return check(url, *args, **kwargs)

    return wrapped


def loopback_webhooks(get_response):
    """Django middleware (installed once at start): webhooks may reach `spanbank watch` on loopback.

    Label Studio's SSRF protection refuses every private address for webhooks, the receiver of
    `spanbank watch` included; it stays on for every other address and for every other fetch
    (imports from URLs, cloud storage), since only the webhook module's two calls are wrapped.
    """
    from webhooks import serializers, utils

    for module, name in ((serializers, "validate_url_for_ssrf"), (utils, "ssrf_safe_post")):
        if hasattr(module, name):  # older Label Studio (1.20) has no such check to relax
            setattr(module, name, _loopback_ok(getattr(module, name)))
    return get_response


def _loopback_session(create_session):
    """Wrap MLApi.create_session: requests to a loopback backend skip the SSRF-guarded adapter."""
    from urllib.parse import urlparse

    from requests.adapters import HTTPAdapter

    def wrapped(self):
        session = create_session(self)
        url = urlparse(self._url)
        if (url.hostname or "") in LOOPBACK_WEBHOOK_HOSTS:
            session.mount(
                f"{url.scheme}://{url.netloc}/", HTTPAdapter(max_retries=self._max_retries)
            )
        return session

    return wrapped


def loopback_ml_backends(get_response):
    """Django middleware (installed once at start): an ML backend may be `spanbank ml-backend`
    on loopback. Label Studio refuses every private address for ML backends; this allows
    127.0.0.1 and localhost only, for the ML module's URL check and its connections."""
    from ml import api_connector, serializers

    if hasattr(serializers, "validate_upload_url"):
        serializers.validate_upload_url = _loopback_ok(serializers.validate_upload_url)
    if hasattr(api_connector.MLApi, "create_session"):
        api_connector.MLApi.create_session = _loopback_session(api_connector.MLApi.create_session)
    return get_response


MIDDLEWARE = [
    "spanbank_ls_settings.offline_paths",
    "spanbank_ls_settings.loopback_webhooks",
    "spanbank_ls_settings.loopback_ml_backends",
    *MIDDLEWARE,
]
