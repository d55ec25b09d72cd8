"""Defaults shared by the client, the magic and the local server (one place to change them)."""

from __future__ import annotations

DEFAULT_BASE_URL = "https://api.anthropic.com"

#: The official SDK's defaults (https://github.com/anthropics/anthropic-sdk-python,
#: ``src/anthropic/_constants.py``): 600 s read, 5 s connect, 2 retries.
DEFAULT_TIMEOUT = 600.0
DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_MAX_RETRIES = 2
INITIAL_RETRY_DELAY = 0.5
MAX_RETRY_DELAY = 8.0
#: A server's Retry-After is obeyed only inside (0, MAX_RETRY_AFTER] seconds, as the SDK does.
MAX_RETRY_AFTER = 60.0

ENV_API_KEY = "ANTHROPIC_API_KEY"
ENV_BASE_URL = "ANTHROPIC_BASE_URL"
ENV_MODEL_PATH = "JUPYTER_COMPLETE_MODEL_PATH"
#: The key `jupyter-complete serve` requires when --api-key is not given (which `ps` would show).
ENV_SERVER_API_KEY = "JUPYTER_COMPLETE_SERVER_API_KEY"
ENV_LOG = "JUPYTER_COMPLETE_LOG"
ENV_RAISE_ERRORS = "JUPYTER_COMPLETE_RAISE_ERRORS"
#: Set to 0 to keep ``%load_ext`` from loading the built-in model ahead of the first answer.
ENV_WARM_UP = "JUPYTER_COMPLETE_WARM_UP"
#: The folder for what is worth keeping between processes (the built-in model's prefix state:
#: `jupyter_complete.local.prefix_cache`); default ``~/.cache/jupyter_complete``.
ENV_CACHE = "JUPYTER_COMPLETE_CACHE"

#: Model used against the real API when the user names none. Text Completions is a legacy
#: endpoint, so this is the last model family documented for it.
DEFAULT_REMOTE_MODEL = "claude-2.1"
#: Name the built-in local server reports in its responses.
LOCAL_MODEL_NAME = "SmolLM2-135M-Instruct"

#: Size limits on what the client reads (bytes after decompression). A real answer is at most
#: a few MB (the largest output limits are ~128k tokens, ~0.5 MB of text; JSON escaping can
#: multiply that by 6), so these sit far above any real answer and far below what would hurt
#: a kernel. Exceeding one raises `ResponseTooLargeError` naming it.
#: A whole response body, or a whole event stream.
MAX_RESPONSE_BYTES = 64 * 1024 * 1024
#: One line of an event stream, and the data of one event.
MAX_EVENT_BYTES = 16 * 1024 * 1024
#: The part of an error response (status >= 300) that is read; the rest is dropped unread.
MAX_ERROR_BODY_BYTES = 64 * 1024
#: The content codings the client asks for (and decodes, streaming or not, with zlib).
ACCEPT_ENCODING = "gzip, deflate"
