"""Label Studio over HTTP: the only module importing label_studio_sdk; retries, timeouts, paging."""

from __future__ import annotations

import json
import math
import random
import re
import time
from collections.abc import Iterable, Iterator
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from label_studio_sdk import LabelStudio
from label_studio_sdk.core.api_error import ApiError

from spanbank.corpus.commits import mask_userinfo
from spanbank.errors import (
    AuthError,
    LabelStudioError,
    LabelStudioServerError,
    ListingChangedError,
)

DEFAULT_TIMEOUT_S = 30.0
LONG_TIMEOUT_S = 120.0  # imports and task pages with annotations
TRIES = 4
BACKOFF_S = 0.5
RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
AUTH_MESSAGE = "Label Studio refused the API key (check LABEL_STUDIO_API_KEY)"
PAT_HINT = (
    "create a new Personal Access Token in Label Studio (Account & Settings) and set "
    "LABEL_STUDIO_API_KEY to it"
)
LEGACY_OFF = "legacy token authentication has been disabled"
LEGACY_OFF_HINT = (
    "use a Personal Access Token (Label Studio: Account & Settings) as "
    "LABEL_STUDIO_API_KEY, or enable legacy tokens in the organisation's API token settings"
)
LISTING_TRIES = 3  # a whole listing read again when its items were added or deleted meanwhile
# the user-info of a URL (`scheme://user:password@`), which we never show or store
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s?#]*@")


class LabelStudioClient:
    """A Label Studio server at `url` with API key `api_key` (never shown in messages or repr).

    Small calls go through the SDK's typed methods; bulk paths (imports, task pages) use the
    SDK's own HTTP client and plain JSON, because building pydantic models for thousands of
    tasks costs more than the HTTP round trips. Every call has an explicit timeout and is
    retried with exponential backoff on connection errors, 429 and 5xx (non-idempotent
    calls only when the request certainly did not reach the server).
    """

    def __init__(
        self,
        url: str,
        api_key: str,
        timeout: float = DEFAULT_TIMEOUT_S,
        tries: int = TRIES,
        backoff: float = BACKOFF_S,
    ):
        # credentials in the URL are dropped: httpx would send them as Basic auth over the
        # API key's header, and they must not reach a message, a table or a report link
        self.url = check_url(str(url))
        api_key = _check_key(api_key)
        self.timeout = timeout
        self.tries = max(1, tries)
        self.backoff = backoff
        # the trailing slash keeps a path prefix (`http://host/ls/`): the SDK joins the token
        # refresh path with urljoin, which drops the last segment of a base without one
        try:
            self._sdk = LabelStudio(base_url=self.url + "/", api_key=api_key, timeout=timeout)
        except ApiError as exc:  # the SDK checks a PAT's expiry while it is built
            raise _token_refused(exc, api_key, "the Personal Access Token cannot be used") from None
        except (TypeError, ValueError, OverflowError, OSError):  # an `exp` it cannot read
            raise AuthError(
                f"the API key looks like a Personal Access Token whose expiry cannot be read; {PAT_HINT}"
            ) from None
        self._http = self._sdk._client_wrapper.httpx_client
        self.answered_at: str | None = None  # the Date header of the server's last answer
        # the SDK's token state (private API): holds the PAT's cached access token and its lock
        self._tokens = self._sdk._client_wrapper._tokens_client

    def __repr__(self) -> str:
        return f"LabelStudioClient({self.url!r})"

    # -- transport ----------------------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict | None = None,
        json_body: Any = None,
        content: bytes | None = None,
        timeout: float | None = None,
        idempotent: bool | None = None,
        ok_404: bool = False,
        tries: int | None = None,
    ) -> Any:
        """One API call with retries; returns the decoded JSON (None for an empty body).

        `content` is a JSON body already encoded (`encode_json`), instead of `json_body`;
        `tries` overrides the client's number of attempts.
        """
        if idempotent is None:
            idempotent = method.upper() in ("GET", "HEAD", "PUT", "DELETE")
        opts = {"max_retries": 0, "timeout_in_seconds": timeout or self.timeout}
        # encoded once here: the SDK's generic encoder walks every value of a bulk body
        body = (
            content
            if content is not None
            else None
            if json_body is None
            else encode_json(json_body)
        )
        headers = {"Content-Type": "application/json"} if body is not None else None
        last = ""
        tries = max(1, tries or self.tries)
        for attempt in range(tries):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1) * (1 + random.random() / 4))
            try:
                resp = self._send(method, path, params, body, headers, opts)
            except httpx.ConnectError:
                last = "unreachable"
                continue  # nothing was sent: always safe to retry
            except httpx.TimeoutException:
                last = f"timed out after {opts['timeout_in_seconds']:.0f} s"
                if idempotent:
                    continue
                break
            except httpx.HTTPError as exc:
                last = f"connection failed ({type(exc).__name__})"
                if idempotent:
                    continue
                break
            status = resp.status_code
            if status == 401 or (status == 403 and _is_auth_failure(resp)):
                raise self._auth_error(resp)
            if status in RETRY_STATUS:
                last = f"answered {status}"
                if idempotent or status == 429:
                    continue
                break
            self.answered_at = resp.headers.get("date")
            if status == 404 and ok_404:
                return None
            if status >= 400:
                raise LabelStudioError(
                    f"Label Studio refused {method} {_short(path)} ({status}): {_detail(resp)}"
                )
            if not resp.content:
                return None
            try:
                return resp.json()
            except ValueError:
                raise LabelStudioError(
                    f"Label Studio answered {method} {_short(path)} with non-JSON; is {self.url} "
                    "a Label Studio server?"
                ) from None
        if last == "unreachable":
            raise LabelStudioError(
                f"cannot reach Label Studio at {self.url}; is it running? (`spanbank server start`)"
            )
        message = (
            f"Label Studio at {self.url} {last} on {method} {_short(path)}"
            f"{f' after {tries} tries' if idempotent else ''}; check the server and its log"
        )
        if last.startswith("answered 5"):
            raise LabelStudioServerError(message)
        raise LabelStudioError(message)

    def _send(self, method: str, path: str, params, body, headers, opts) -> httpx.Response:
        """One HTTP request; with a PAT, a 401 gets a fresh access token and one more try.

        The access token can expire between the SDK's check and the server's (or a clock is
        skewed); a refused request was not carried out, so sending it again is safe.
        """
        for fresh in (False, True):
            self._ensure_access()
            try:
                resp = self._http.request(
                    path.lstrip("/"),
                    method=method,
                    params=params,
                    content=body,
                    headers=headers,
                    request_options=opts,
                )
            except ApiError as exc:  # the access token expired just after _ensure_access
                raise _token_refused(exc, self._tokens._api_key) from None
            if resp.status_code != 401 or fresh or not self._drop_access(resp):
                return resp
        return resp

    @property
    def uses_pat(self) -> bool:
        """Whether the API key is a Personal Access Token (a JWT refresh token), not a legacy token."""
        return not self._tokens._use_legacy_token

    def _ensure_access(self) -> None:
        """Get a PAT's access token now if it is due, so refresh failures become one-line errors."""
        if not self.uses_pat:
            return
        try:
            self._tokens.api_key  # noqa: B018 - the property refreshes when needed
        except ApiError as exc:
            raise _token_refused(exc, self._tokens._api_key) from None
        except ValueError:  # the refresh answer was not JSON (a proxy's or web server's page)
            raise LabelStudioError(
                f"Label Studio at {self.url} answered the token refresh (POST "
                f"{self.url}/api/token/refresh/) with something other than JSON; check the URL "
                "and its path prefix (a server behind a proxy at http://HOST/ls needs --url "
                "http://HOST/ls)"
            ) from None

    def _drop_access(self, resp: httpx.Response) -> bool:
        """Forget the PAT access token `resp` was refused with; False for a legacy token."""
        if not self.uses_pat:
            return False
        sent = resp.request.headers.get("authorization", "")
        with self._tokens._token_refresh_lock:
            # another thread may have replaced it already: then just retry with the new one
            if sent == f"Bearer {self._tokens._access_token}":
                self._tokens._access_token = None
        return True

    def _auth_error(self, resp: httpx.Response) -> AuthError:
        """The one-line AuthError for a refused request, with the server's reason when it helps."""
        reason = _redact(_reason(resp), self._tokens._api_key)
        if LEGACY_OFF in reason:
            return AuthError(f"Label Studio refused the API key: {reason}; {LEGACY_OFF_HINT}")
        if self.uses_pat:
            return AuthError(
                f"Label Studio refused the Personal Access Token ({reason}); {PAT_HINT}"
            )
        return AuthError(AUTH_MESSAGE)

    # -- account ------------------------------------------------------------------------
    def whoami(self) -> dict:
        """The user the key belongs to (checks the URL and the key in one call)."""
        return self.request("GET", "api/current-user/whoami")

    def list_users(self) -> list[dict]:
        return self.request("GET", "api/users/")

    def create_user(self, email: str, username: str | None = None, **fields) -> dict:
        body = {"email": email, "username": username or email.split("@")[0], **fields}
        return self.request("POST", "api/users/", json_body=body)

    def server_time(self) -> datetime | None:
        """The server's clock as it answers a small request (its Date header, to the second);
        None when it sends none."""
        self.request("GET", "api/version")
        try:
            return parsedate_to_datetime(self.answered_at) if self.answered_at else None
        except (TypeError, ValueError):
            return None

    # -- projects -----------------------------------------------------------------------
    def find_project(self, title: str, fields: Iterable[str] | None = None) -> dict | None:
        """The project with exactly this title (the lowest id if several), or None.

        `fields` limits the JSON to those fields (plus id and title): the full project JSON
        counts the project's tasks and annotations, which costs the server time on a big one.
        """
        params: dict[str, Any] = {"title": title, "page_size": 100}
        if fields is not None:
            params["include"] = ",".join(dict.fromkeys(["id", "title", *fields]))
        found = []
        for page in self._pages("api/projects/", params, "results"):
            found += [p for p in page if p.get("title") == title]
        return min(found, key=lambda p: p["id"]) if found else None

    def get_project(self, project_id: int) -> dict:
        return self.request("GET", f"api/projects/{int(project_id)}/")

    def create_project(self, title: str, label_config: str, **fields) -> dict:
        body = {"title": title, "label_config": label_config, **fields}
        return self.request("POST", "api/projects/", json_body=body)

    def update_project(self, project_id: int, **fields) -> dict:
        return self.request(
            "PATCH", f"api/projects/{int(project_id)}/", json_body=fields, idempotent=True
        )

    def project_url(self, project_id: int) -> str:
        return f"{self.url}/projects/{int(project_id)}/data"

    # -- tasks --------------------------------------------------------------------------
    def import_tasks(
        self, project_id: int, tasks: list[dict] | bytes, count: int | None = None
    ) -> list[int]:
        """Create tasks in one POST; returns their ids in order. Not retried once sent.

        `tasks` may come encoded already (`encode_json(tasks)`, e.g. while an earlier import is
        on the server), with their `count`. Asking for the ids costs the server nothing
        measurable (it lists the tasks it just made).
        """
        if isinstance(tasks, bytes | bytearray):
            if count is None:
                raise ValueError("import_tasks: pass the count of encoded tasks")
            body, n = bytes(tasks), int(count)
        else:
            body, n = encode_json(tasks), len(tasks)
        out = self.request(
            "POST",
            f"api/projects/{int(project_id)}/import",
            params={"return_task_ids": "true"},
            content=body,
            timeout=LONG_TIMEOUT_S,
            idempotent=False,
        )
        ids = (out or {}).get("task_ids")
        if not isinstance(ids, list) or len(ids) != n:
            raise LabelStudioError(
                f"Label Studio imported {len(ids or [])} of {n} tasks without saying which; "
                "re-run to reconcile"
            )
        return [int(i) for i in ids]

    def task_pages(
        self,
        project_id: int,
        *,
        include: list[str] | None = None,
        ids: list[int] | None = None,
        page_size: int = 500,
        timeout: float = LONG_TIMEOUT_S,
        tries: int | None = None,
    ) -> Iterator[list[dict]]:
        """Pages of a project's tasks with annotations and predictions (`include`: only those fields).

        `ids` limits the listing to those tasks (fetched in bounded chunks); `tries` overrides
        the client's attempts per page.
        """
        base: dict[str, Any] = {"project": int(project_id), "fields": "all"}
        if include:
            base["include"] = ",".join(include)
        if ids is None:
            yield from self._pages(
                "api/tasks", {**base, "page_size": page_size}, "tasks", timeout, tries, whole=True
            )
            return
        for i in range(0, len(ids), page_size):
            chunk = [int(t) for t in ids[i : i + page_size]]
            query = json.dumps({"selectedItems": {"all": False, "included": chunk}})
            params = {**base, "page_size": len(chunk), "query": query}
            yield from self._pages("api/tasks", params, "tasks", timeout, tries)

    def _pages(
        self,
        path: str,
        params: dict,
        key: str,
        timeout: float | None = None,
        tries: int | None = None,
        whole: bool = False,
    ):
        """The pages of a listing. `whole`: the listing must hold every item once (a caller takes
        what it lacks as deleted), so a count that changed between pages, an id seen twice or an
        end before the count raise ListingChangedError."""
        page = 1
        seen, ids, first = 0, set(), None
        while True:
            out = self.request(
                "GET",
                path,
                params={**params, "page": page},
                timeout=timeout,
                ok_404=page > 1,
                tries=tries,
            )
            items = [] if out is None else out.get(key, []) if isinstance(out, dict) else out
            total = out.get("total", out.get("count")) if isinstance(out, dict) else None
            if whole:
                first = total if first is None else first
                ids.update(int(i["id"]) for i in items)
                seen_twice = len(ids) < seen + len(items)
                ended = not items and first is not None and seen < first
                if seen_twice or ended or (total is not None and total != first):
                    raise ListingChangedError(
                        f"the listing of {_short(path)} changed while it was read (items added "
                        "or deleted in Label Studio meanwhile)"
                    )
            if not items:  # Django answers 404 "Invalid page" past the end
                return
            yield items
            seen += len(items)
            if total is None or seen >= total or isinstance(out, list):
                return
            page += 1

    def delete_task(self, task_id: int) -> None:
        self.request("DELETE", f"api/tasks/{int(task_id)}/")

    # -- annotations (tests, reviews) ---------------------------------------------------
    def create_annotation(self, task_id: int, result: list[dict], **fields) -> dict:
        return self.request(
            "POST", f"api/tasks/{int(task_id)}/annotations/", json_body={"result": result, **fields}
        )

    def update_annotation(self, annotation_id: int, **fields) -> dict:
        return self.request(
            "PATCH", f"api/annotations/{int(annotation_id)}/", json_body=fields, idempotent=True
        )

    def delete_annotation(self, annotation_id: int) -> None:
        self.request("DELETE", f"api/annotations/{int(annotation_id)}/")


def encode_json(value: Any) -> bytes:
    """A request body: compact UTF-8 JSON (what `request` sends for `json_body`); NaN/inf as null.

    Label Studio refuses a whole body with one NaN in it (a missing title read by pandas), so
    a body that has one is re-encoded with every non-finite float as null.
    """
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except ValueError:
        text = json.dumps(
            _finite(value), ensure_ascii=False, separators=(",", ":"), allow_nan=False
        )
    return text.encode()


def _finite(value: Any) -> Any:
    """`value` with every NaN or infinite float (at any depth) replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def redact_url(text: str) -> str:
    """`text` with the user-info of every URL in it removed (`http://user:pw@host` -> `http://host`)."""
    return _USERINFO.sub(r"\1", text)


def check_url(url: str) -> str:
    """`url` without user-info or a trailing slash, or a LabelStudioError saying why it is not an
    http(s) URL (showing no part of a user-info, however it is written)."""
    url = url.strip().rstrip("/")
    hint = "pass --url http://HOST:PORT or set LABEL_STUDIO_URL"
    try:
        parsed = httpx.URL(url)
        parsed.port  # noqa: B018 - a bad port raises only when read
        parsed.raw_host  # noqa: B018 - nor a bad IDNA host (`xn--.com`) until it is encoded
        if "%" in parsed.host:  # a space or other byte no host name holds, percent-encoded
            raise ValueError(f"no host is named {parsed.host!r}")
    except (httpx.InvalidURL, ValueError, TypeError, UnicodeError) as exc:
        # a password holding '/', '?' or '#' reads as a port or a path: the error would show it
        why = "a user name or password, which spanbank does not use, must not hold '/?#@'"
        raise LabelStudioError(
            f"Label Studio URL {masked_url(url)!r} is malformed ({why if '@' in url else exc}); {hint}"
        ) from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise LabelStudioError(
            f"Label Studio URL {masked_url(url)!r} is not an http(s)://HOST URL; {hint}"
        )
    head = url.find("://") + 3
    end = min((i for i in map(url.find, "/?#", [head] * 3) if i >= 0), default=len(url))
    at = url.rfind("@", head, end)  # user-info ends at the authority's last '@'
    return url if at < 0 else url[:head] + url[at + 1 :]


def masked_url(url: str) -> str:
    """`url` for a message: all before its last '@' but the scheme masked."""
    if "@" not in url:
        return url
    head = url.find("://") + 3 if "://" in url else 0
    return url[:head] + "…@" + url.rsplit("@", 1)[1]


def _check_key(api_key: str) -> str:
    """The API key without surrounding whitespace, or a LabelStudioError (never showing the key)."""
    key = str(api_key or "").strip()
    if not key.isascii() or not key.isprintable():
        raise LabelStudioError(
            "the Label Studio API key holds non-ASCII or control characters, so it cannot be "
            "sent; copy it again from Label Studio (Account & Settings) into LABEL_STUDIO_API_KEY"
        )
    return key


def _token_refused(
    exc: ApiError, api_key: str, what: str = "Label Studio refused the Personal Access Token"
) -> AuthError:
    """The one-line AuthError for a PAT the SDK or the refresh endpoint refused, with the reason."""
    body = exc.body
    reason = body.get("detail") if isinstance(body, dict) and body.get("detail") else body
    return AuthError(f"{what}: {_redact(_one_line(reason), api_key)}; {PAT_HINT}")


def _reason(resp: httpx.Response) -> str:
    """The server's one-line reason for refusing a request (its `detail`), without a final period."""
    try:
        body = resp.json()
    except ValueError:
        return f"HTTP {resp.status_code}"
    detail = body.get("detail") if isinstance(body, dict) else None
    return _one_line(detail or f"HTTP {resp.status_code}")


def _one_line(value: Any) -> str:
    """`value` as text for a one-line message: its first line, at most 300 characters, no final period."""
    lines = str(value).strip().splitlines() or [""]
    return lines[0].strip().rstrip(".")[:300]


def _redact(text: str, secret: str) -> str:
    """`text` with `secret` (and its JWT header/payload part) masked, should a server echo it."""
    for part in {secret, secret.rsplit(".", 1)[0]}:
        if len(part) >= 8:
            text = text.replace(part, "***")
    return text


def _is_auth_failure(resp: httpx.Response) -> bool:
    text = resp.text.lower()
    return any(w in text for w in ("credentials", "token", "not authenticated"))


def _short(path: str) -> str:
    return "/" + path.lstrip("/").split("?", 1)[0]


def _detail(resp: httpx.Response) -> str:
    """The server's reason for a 4xx, without the credential the request sent or a URL's
    user-info (a server may echo either: an ml-backend URL's password came back in a 400)."""
    try:
        body = resp.json()
    except ValueError:
        text = resp.text
    else:
        if isinstance(body, dict):
            body = next(
                (body[k] for k in ("validation_errors", "detail", "error") if body.get(k)), body
            )
        text = json.dumps(body, ensure_ascii=False)
    credential = resp.request.headers.get("authorization", "").partition(" ")[2].strip()
    text = mask_userinfo(redact_url(_redact(text, credential) if credential else text))
    return text[:300].replace("\n", " ")
