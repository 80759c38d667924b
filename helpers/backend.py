"""Choosing and connecting to a backend: real Tinker, or the local in-process one.

``connect()`` returns a service client with Tinker's interface. With
``TINKER_API_KEY`` set it is the real ``tinker.ServiceClient`` (server from
``base_url`` or ``TINKER_BASE_URL``); without, the local backend
(:mod:`helpers.local`). ``PD_BACKEND=local|tinker`` overrides the automatic
choice, for example to run offline with a key in the environment. The key
itself is never printed, logged or stored.

Example
-------
>>> service = connect("local")
>>> service.backend
'local'
"""

from __future__ import annotations

import atexit
import os
import re
import socket
import sys
import threading
import time
from urllib.parse import urlparse

from .dataio import DataError

BACKENDS = ("local", "tinker")
CONNECT_TIMEOUT = 20.0
FINISH_TIMEOUT = 5.0  # seconds to wait for the server to take note that a session ended
_OPENED: list = []  # the Tinker service clients connect() made, until finish_sessions() closes them
_AT_EXIT: list = []  # holds True once finish_sessions is registered to run at exit


class BackendError(RuntimeError):
    """The backend cannot be used; the message says what to check (a server's URL in it is
    shown without its user and token: :func:`shown_url`)."""

    def __init__(self, message: str = "", *args):
        super().__init__(shown_url(str(message)), *args)


def redact(text: str) -> str:
    """``text`` with the API key in ``TINKER_API_KEY`` replaced by ``***``, whatever it quotes.

    Every error text that reaches the terminal or a file goes through here. A blank value, or
    one shorter than 8 characters, is left alone: replacing it would mangle the text (every
    space turned into ``***``) and hide no secret.
    """
    key = (os.environ.get("TINKER_API_KEY") or "").strip()
    text = text.replace(key, "***") if len(key) >= 8 else text
    return shown_url(text)


_USERINFO = re.compile(r"(?<=://)[^/?#\s'\"]+@")  # up to the authority's last @: a password may hold one


def shown_url(text: str) -> str:
    """``text`` with the user and password of any URL in it (``https://user:token@host``, a
    ``TINKER_BASE_URL`` behind a gateway) replaced by ``***``: a URL is shown, never its secret.

    >>> shown_url("cannot reach https://me:s3cret@gw.example/v1 (timeout)")
    'cannot reach https://***@gw.example/v1 (timeout)'
    >>> shown_url("https://me:p@ss@gw.example/v1?to=a@b")
    'https://***@gw.example/v1?to=a@b'
    """
    return _USERINFO.sub("***@", text)


_LOG_REDACTION: list = []  # holds True once log records are redacted (see redact_logs)


def redact_logs() -> None:
    """Redact the key from every log record from now on, whoever logs it.

    The SDK logs a failed request's error text itself (``tinker.lib.retry_handler``), and a
    server may quote the key in it; with no logging set up, Python prints such records on
    stderr. A filter on the ``tinker`` logger would miss its children's records, so the record
    factory redacts each record's message and exception text as it is made. Idempotent.
    """
    if _LOG_REDACTION:
        return
    import logging

    make = logging.getLogRecordFactory()

    def redacted(*args, **kwargs):
        record = make(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 (a bad format string is the handler's to report)
            return record
        if redact(message) != message:
            record.msg, record.args = redact(message), None
        if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
            text = logging.Formatter().formatException(record.exc_info)
            if redact(text) != text:
                record.exc_text = redact(text)
        return record

    logging.setLogRecordFactory(redacted)
    _LOG_REDACTION.append(True)


def choose_backend(backend: str | None = None) -> tuple[str, str]:
    """(backend, why): the explicit choice, else ``PD_BACKEND``, else Tinker if a key is set."""
    if backend is not None:
        if backend not in BACKENDS:
            raise DataError(f"setting: backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
        return backend, "asked for"
    env = os.environ.get("PD_BACKEND", "").strip().lower()  # as PD_QUICK: "Local " is local, "" unset
    if env:
        if env not in BACKENDS:
            raise DataError(f"setting: PD_BACKEND must be one of {', '.join(BACKENDS)}, got {env!r}")
        return env, "PD_BACKEND is set"
    key = os.environ.get("TINKER_API_KEY")
    if key:
        return "tinker", "TINKER_API_KEY is set"
    if key == "":  # as an unset one: `export TINKER_API_KEY=`, a CI secret that is not there
        return "local", "TINKER_API_KEY is empty"
    return "local", "no TINKER_API_KEY in the environment"


def tinker_base_url(base_url: str | None = None) -> str:
    """The server the SDK will talk to: ``base_url``, else ``TINKER_BASE_URL``, else Tinker's own.

    Asked of the SDK, so that the checks here test the server its client will use; an SDK
    without that (internal) helper gets the same rule, with the address it documents.
    """
    try:
        from tinker.lib.base_url import resolve_base_url
    except ImportError:
        return (base_url or os.environ.get("TINKER_BASE_URL") or
                "https://tinker.thinkingmachines.dev/services/tinker-prod").rstrip("/")
    return resolve_base_url(base_url)


def check_reachable(base_url: str, timeout: float = CONNECT_TIMEOUT) -> None:
    """Open a TCP connection to the server, or raise :class:`BackendError` within ``timeout``
    (the whole check: the host name's lookup and every address tried).

    Every address of the host is tried (IPv6 and IPv4). Behind a proxy (``HTTPS_PROXY`` and
    the like, which Tinker's HTTP client follows) a direct connection proves nothing, so the
    check is skipped unless ``NO_PROXY`` names the host.
    """
    from urllib.request import getproxies, proxy_bypass

    parsed = urlparse(base_url)
    host = parsed.hostname
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    if not host:
        shown = f"***@{base_url.rsplit('@', 1)[1]}" if "@" in base_url and "://" not in base_url else base_url
        raise BackendError(f"TINKER_BASE_URL {shown!r} is not a URL like https://host/path")
    proxies = getproxies()
    if (proxies.get(parsed.scheme) or proxies.get("all")) and not proxy_bypass(host):
        return
    deadline = time.monotonic() + timeout

    def attempt() -> None:  # in a thread (see _within): the name lookup has no timeout of its own
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        error: Exception = OSError(f"no address for {host}")
        for i, (family, kind, proto, _, address) in enumerate(addresses):
            # each address gets an equal share of the time left, so a silent first one
            # (often IPv6) does not use it all up before the others are tried
            share = max(0.1, (deadline - time.monotonic()) / (len(addresses) - i))
            try:
                with socket.socket(family, kind, proto) as sock:
                    sock.settimeout(share)
                    sock.connect(address)
                return
            except OSError as e:
                error = e
        raise error

    try:
        _within(timeout, attempt, "no connection within {timeout:g} s, name lookup included")
    except Exception as e:  # noqa: BLE001 (each reported the same way)
        raise BackendError(
            f"cannot reach the Tinker server at {base_url} ({e.__class__.__name__}: {e}); "
            "check your network, TINKER_BASE_URL, or run offline with PD_BACKEND=local"
        ) from None


def connect(backend: str | None = None, base_url: str | None = None, store=None, verbose: bool = False):
    """A service client for ``backend`` ("local", "tinker", or None to choose).

    Parameters
    ----------
    backend : "local", "tinker", or None (``PD_BACKEND``, else Tinker when a key is set).
    base_url : a Tinker-compatible server (default ``TINKER_BASE_URL``, else Tinker's own).
    store : folder for local checkpoints (local backend only). The default, ``HELPERS_LOCAL_STORE``
        or ``~/.cache/prompt-distillation``, stands in for Tinker's own storage: checkpoints
        outlive the run, and nothing removes them. The command line, ``run`` and the notebooks
        keep a student's weights in its folder instead: ``connect("local", store=out / "weights")``.
    verbose : print which backend was chosen and why (never the key).
    """
    name, why = choose_backend(backend)
    if verbose:
        print(f"backend: {name} ({why})", file=sys.stderr)
    if name == "local":
        from .local import LocalServiceClient

        return LocalServiceClient(store=store)
    key = os.environ.get("TINKER_API_KEY")
    if not key:
        # named by the caller (--backend tinker, connect("tinker")), PD_BACKEND would not override it
        offline = "--backend local (connect('local') in Python)" if backend is not None else "PD_BACKEND=local"
        raise BackendError(
            "backend 'tinker' needs an API key: set TINKER_API_KEY in the environment "
            f"(export TINKER_API_KEY=...), or use the offline backend with {offline}"
        )
    if not key.strip():  # a set value selects Tinker (choose_backend), so a blank one is a bad setting
        raise BackendError(
            "TINKER_API_KEY is set but empty (only blanks): export your key again, "
            "or unset TINKER_API_KEY (or set PD_BACKEND=local) to run offline"
        )
    check_key_text(key)  # before any request: a pasted key's stray blanks are named, not "refused"
    redact_logs()  # the SDK logs failed requests' texts, which a server may make quote the key
    url = tinker_base_url(base_url)
    check_reachable(url)
    check_key(url)
    import tinker

    # no request here: the SDK creates its session on the first call (create_sampling_client, ...)
    client = tinker.ServiceClient(base_url=url)
    client.backend = "tinker"
    client.server_url = url  # for the REST calls that need no session (supported_models)
    if not _AT_EXIT:
        # At exit, before the thread pools shut down: the SDK's requests need them, and they stop
        # before atexit's functions run. threading's hook (the one concurrent.futures uses) runs
        # the last registered first; atexit is the fallback where it is missing.
        register = getattr(threading, "_register_atexit", atexit.register)
        register(lambda: finish_sessions(_exit_status()))
        _AT_EXIT.append(True)
    _OPENED.append(client)
    return client


def _exit_status() -> str:
    """How the process ends, for the sessions still open at exit (a notebook's kernel shut down,
    a script that connected itself): an uncaught error or Ctrl-C in a script says so. An error
    shown earlier in a kernel's cell or at an interactive prompt says nothing about how the
    session ended, so a kernel or an interactive session ends in success; so does a script that
    calls ``sys.exit(n)`` (the code is not known at this point: a script that cares calls
    :func:`finish_sessions` itself, as the course's commands do)."""
    error = getattr(sys, "last_value", None)
    interactive = "ipykernel" in sys.modules or hasattr(sys, "ps1") or sys.flags.interactive
    if error is None or interactive:
        return "success"
    return "interrupted" if isinstance(error, KeyboardInterrupt) else "errored"


def finish_sessions(status: str, timeout: float = FINISH_TIMEOUT) -> int:
    """Tell Tinker that the sessions of the service clients ``connect()`` made are over, with how
    they ended: ``"success"``, ``"errored"`` or ``"interrupted"`` (the SDK's ``close``).

    The command line calls this as each command ends, so the server shows a finished session
    rather than one whose heartbeat stopped; the sessions still open when the process exits (a
    notebook's kernel shut down, a script of the learner's) are finished then. A client that
    never opened a session sends nothing. Each is waited for at most ``timeout`` seconds, and a
    server that does not take note only loses the note: this never raises. Returns how many
    clients were closed.
    """
    closed = 0
    while _OPENED:
        client = _OPENED.pop(0)
        try:
            client.close(status).result(timeout=timeout)
        except KeyboardInterrupt:  # Ctrl-C again while waiting: the learner wants out, not the courtesy
            _OPENED.clear()
            break
        except Exception:  # noqa: BLE001,S110 (the work is done or already failed; this is a courtesy)
            pass
        closed += 1
    return closed


def check_key_text(key: str | None = None) -> None:
    """Raise :class:`BackendError` when the key in ``TINKER_API_KEY`` (or ``key``) has spaces or a
    line break before or after it, as a key pasted from the console or a file often has, or a
    blank, control or non-ASCII character inside it (two keys pasted on two lines, a typographic
    quote); the message says which and where, never the key. The SDK would send it as it is, and
    the learner would read that the key is wrong (or wait for a timeout) and copy the same text again."""
    key = os.environ.get("TINKER_API_KEY", "") if key is None else key
    stripped = key.strip()
    if not stripped:
        return
    if stripped != key:
        _blanks_around(key)
    # Inside the key: a character no HTTP header may carry (the SDK's request would hang until
    # it timed out, and a correct key set later in the same process too) or that no key has.
    odd = next(((i, c) for i, c in enumerate(key) if not (c.isascii() and c.isprintable()) or c.isspace()), None)
    if odd is not None:
        i, c = odd
        what = ("a line break" if c in "\r\n" else "a blank" if c.isspace() else
                "a control character" if c.isascii() else f"a non-ASCII character (U+{ord(c):04X})")
        raise BackendError(f"TINKER_API_KEY has {what} at character {i + 1} of {len(key)}, which no key has: "
                           "set it again to the key alone, or run offline with PD_BACKEND=local")


def _blanks_around(key: str) -> None:
    """Raise :class:`BackendError` naming the spaces or line breaks before or after ``key``."""
    before, after = key[: len(key) - len(key.lstrip())], key[len(key.rstrip()):]
    around = before + after
    breaks = any(c in "\r\n" for c in around)
    others = any(c not in "\r\n" for c in around)
    what = " and ".join(w for w, present in (("spaces", others), ("a line break", breaks)) if present)
    where = "before and after" if before and after else "before" if before else "after"
    raise BackendError(f"TINKER_API_KEY has {what} {where} the key, pasted along with it: set it again to the "
                       "key alone, or run offline with PD_BACKEND=local")


def check_key(base_url: str, timeout: float = CONNECT_TIMEOUT) -> None:
    """Ask the server for its capabilities with the key in ``TINKER_API_KEY``, or raise
    :class:`BackendError` saying that the key was refused (the key itself is never shown).

    One small request that needs no session: a wrong or revoked key stops ``connect()``
    with a one-line reason instead of a traceback from the first real call. A server that
    never answers, or fails every request, raises within ``timeout`` too (see
    :func:`_within`).

    For the server the SDK would choose itself (``TINKER_BASE_URL``, else Tinker's own) the
    request is the SDK's public ``tinker.auth.raise_if_tinker_not_accessible()``, which is
    not retried: the SDK's usual path waits on a 402 (no billing) for up to an hour, and the
    check would then report a server that did not answer. Another ``base_url`` is asked
    through ``tinker.RestClient``, where a 402 the configuration request does not already
    meet shows as that timeout.
    """
    import tinker

    setting = "TINKER_API_KEY"
    check_key_text()
    try:
        if base_url == tinker_base_url() and hasattr(tinker, "auth"):
            _within(timeout, tinker.auth.raise_if_tinker_not_accessible)
        else:
            _capabilities(base_url, timeout)
        return
    except Exception as e:  # noqa: BLE001 (judged below)
        error: BaseException = e
    # the SDK (0.38) can fail while handling a 402 at client creation (an AttributeError of its
    # own): the billing error it was handling is the reason
    error = _in_chain(error, tinker.BillingError) or error
    if isinstance(error, tinker.AuthenticationError):
        raise BackendError(f"Tinker at {base_url} refused the API key in {setting} ({error.status_code}): check that "
                           "it is complete and current, or run offline with PD_BACKEND=local")
    if isinstance(error, tinker.BillingError):  # else the SDK pauses on every 402, for up to an hour, silently
        raise BackendError(f"Tinker at {base_url} accepted the API key in {setting} but reports a billing problem "
                           f"({error.status_code}): check billing in the Tinker console, or run offline with "
                           "PD_BACKEND=local")
    if isinstance(error, tinker.PermissionDeniedError):
        raise BackendError(f"Tinker at {base_url} accepted the API key in {setting} but gives it no access "
                           f"({error.status_code}): check the key's project and billing")
    if isinstance(error, tinker.APIStatusError):
        return  # any other answer (a compatible server without this route, ...) proves nothing against the key
    if isinstance(error, TimeoutError):
        raise BackendError(f"Tinker at {base_url} did not answer within {timeout:g} s; try again later, "
                           "or run offline with PD_BACKEND=local")
    if isinstance(error, tinker.APIConnectionError):  # the SDK's check is not retried: a dropped connection
        raise BackendError(f"Tinker at {base_url} could not be asked to check the API key ({type(error).__name__}: "
                           f"{redact(' '.join(str(error).split()))}); try again later, or run offline with "
                           "PD_BACKEND=local")
    message = " ".join(str(error).split())
    if isinstance(error, tinker.TinkerError) and not isinstance(error, tinker.APIError) and (
            "api_key" in message.lower() or "api key" in message.lower()):
        # refused by the SDK before any request, e.g. "The api_key must start with the 'tml-' prefix"
        raise BackendError(f"the Tinker SDK cannot use the API key in {setting} ({redact(message)}): copy it "
                           "again from the Tinker console, or run offline with PD_BACKEND=local")
    raise error


def _in_chain(error: BaseException | None, kind: type) -> BaseException | None:
    """The first exception of ``kind`` among ``error`` and the ones it was raised from or during."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, kind):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def _capabilities(base_url: str | None, timeout: float | None = None):
    """The server's ``GetServerCapabilitiesResponse``, asked through a ``tinker.RestClient``
    (it needs no session; ``ServiceClient.create_rest_client`` is deprecated), or
    ``TimeoutError`` after ``timeout`` seconds (default ``CONNECT_TIMEOUT``).

    The whole request, the SDK's client creation included (it fetches its configuration
    first and retries for minutes), runs within ``timeout`` (:func:`_within`).
    """
    import tinker

    timeout = CONNECT_TIMEOUT if timeout is None else timeout
    return _within(timeout, lambda: tinker.RestClient(base_url=base_url).get_server_capabilities().result(timeout=timeout))


def _within(timeout: float, ask, late: str = "no answer within {timeout:g} s"):
    """``ask()``'s result, run in a daemon thread that is waited for at most ``timeout``
    seconds, or ``TimeoutError(late)``; an error it raises is raised here, in the caller's
    thread."""
    outcome: list = []

    def run() -> None:
        try:
            outcome.append((True, ask()))
        except Exception as e:  # noqa: BLE001 (raised in the caller's thread)
            outcome.append((False, e))

    worker = threading.Thread(target=run, name="tinker-check", daemon=True)
    worker.start()
    worker.join(timeout)
    if not outcome:
        raise TimeoutError(late.format(timeout=timeout))
    ok, value = outcome[0]
    if not ok:
        raise value
    return value


def _listed(service) -> list:
    """The ``SupportedModel`` entries the server (or the local backend) lists."""
    if getattr(service, "backend", None) == "local":
        return service.get_server_capabilities().supported_models
    url = getattr(service, "server_url", None)
    try:
        return _capabilities(url).supported_models
    except TimeoutError:
        raise BackendError(f"Tinker at {url} did not answer within {CONNECT_TIMEOUT:g} s when asked for its "
                           "models; try again later, or run offline with PD_BACKEND=local") from None


def _able(m, use: str | None) -> bool:
    """Whether listed model ``m`` can be used for ``use`` ("train", "sample" or None: listed);
    a model the server says nothing about counts as able."""
    return not (use == "sample" and m.sampleable is False) and not (use == "train" and m.trainable is False)


def supported_models(service, sampleable: bool = False, trainable: bool = False) -> list[str]:
    """Names of the models the server (or the local backend) offers; with ``sampleable``, only
    those it can sample now, with ``trainable`` only those it can train (a model the server
    says nothing about counts as both)."""
    return [m.model_name for m in _listed(service) if m.model_name
            and _able(m, "sample" if sampleable else None) and _able(m, "train" if trainable else None)]


def check_model(service, model: str, use: str | None = None) -> str:
    """Return ``model`` if the server lists it, else raise naming the ones it does list. With
    ``use="train"`` or ``"sample"``, a listed model the server says it cannot train, or cannot
    sample now, is refused too, naming the ones it can: before any run or folder is made,
    not as the server's error from the first request.

    A local folder holding a Hugging Face model is accepted by the local backend as is. A
    Tinker-compatible server that answers the request for its models with an error status
    has no such list: the name is not second-guessed (the request that uses it reports a bad
    one), as :func:`connect` and :func:`context_length` do not hold that answer against it.
    """
    import tinker

    if use not in (None, "train", "sample"):
        raise ValueError(f"use must be None, 'train' or 'sample', got {use!r}")
    if getattr(service, "backend", None) == "local" and os.path.isdir(os.path.expanduser(model)):
        return model
    try:
        listed = [m for m in _listed(service) if m.model_name]
    except tinker.APIStatusError:
        return model
    entry = next((m for m in listed if m.model_name == model), None)
    if entry is None:
        names = sorted(m.model_name for m in listed)
        raise BackendError(f"model {model!r} is not offered by this server; it offers: {', '.join(names)}")
    if not _able(entry, use):
        able = sorted(m.model_name for m in listed if _able(m, use)) or ["none"]
        what = {"train": ("cannot be trained on this server", "it trains"),
                "sample": ("cannot be sampled on this server now (no sampling capacity)", "it samples")}[use]
        raise BackendError(f"model {model!r} {what[0]}; {what[1]}: {', '.join(able)}")
    return model


_CONTEXTS: dict[str | None, dict[str, int | None]] = {}  # server URL -> model -> context, asked once
_CONTEXTS_LOCK = threading.Lock()


def context_length(service, model: str) -> int | None:
    """The longest input, in tokens, the server says ``model`` takes (``SupportedModel``'s
    ``max_context_length``); None when it does not say, does not list the model, or cannot be
    asked now (the calls that follow meet that problem and report it).

    A Tinker server is asked once per process (again only after no answer came); a prompt that
    does not leave room for ``max_tokens`` in it is better not sent, since the server refuses
    it. Locally the tiny models say 512, the stand-in teacher nothing.
    """
    if getattr(service, "backend", None) == "local":
        models = service.get_server_capabilities().supported_models
        return next((m.max_context_length for m in models if m.model_name == model), None)
    url = getattr(service, "server_url", None)
    if url is None:  # not a client connect() made (a wrapper, a test's stand-in): nothing to ask
        return None
    import tinker

    with _CONTEXTS_LOCK:
        if url not in _CONTEXTS:
            try:
                models = _capabilities(url).supported_models
            except tinker.APIStatusError:  # the server answered that it has no such list: it will not later
                models = []
            except Exception:  # noqa: BLE001 (a timeout, a lost connection: ask again next time; the
                return None  # requests themselves report a server that stays away)
            _CONTEXTS[url] = {m.model_name: m.max_context_length for m in models if m.model_name}
        return _CONTEXTS[url].get(model)
