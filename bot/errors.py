"""The bot's exception tree. Foreign exceptions are translated once, at the boundary
module that meets them (httpx in `source`, sqlite in `store`, slack_sdk in `notify`).

    BotError
     ├── ConfigError          bad env var or rules file: fatal at start
     ├── SourceError          the usage API failed us (.transient says whether to retry)
     │    └── SchemaDrift     a 2xx body that is not JSON or not the assumed shape
     ├── StoreError           SQLite could not do what we asked
     └── NotifyError          Slack (or the console) could not take a message (.permanent)
"""

from __future__ import annotations


class BotError(Exception):
    """Root of every error the bot raises on purpose."""


class ConfigError(BotError):
    """Configuration is wrong. `problems` lists every problem, one line each."""

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class SourceError(BotError):
    """A usage-API call failed.

    Attributes mirror the API's error envelope; `status` is the HTTP status (None when
    no response arrived), `transient` is True when retrying later may succeed and
    `retry_after` holds the server's Retry-After in seconds, if it sent one.
    """

    def __init__(
        self,
        message: str,
        *,
        endpoint: str = "",
        status: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
        transient: bool = False,
        retry_after: float | None = None,
    ) -> None:
        self.message = message
        self.endpoint = endpoint
        self.status = status
        self.code = code
        self.request_id = request_id
        self.transient = transient
        self.retry_after = retry_after
        super().__init__(self._describe())

    def _describe(self) -> str:
        parts = [self.endpoint or "usage API"]
        if self.status is not None:
            parts.append(f"HTTP {self.status}")
        if self.code:
            parts.append(self.code)
        text = " ".join(parts) + f": {self.message}"
        if self.request_id:
            text += f" (request_id={self.request_id})"
        return text


class SchemaDrift(SourceError):
    """The API answered 2xx with a body we cannot trust. `path` names the field.

    Not retried within a poll (the same body would come back); the next cycle tries again.
    """

    def __init__(
        self,
        message: str,
        *,
        endpoint: str = "",
        status: int | None = None,
        path: str = "$",
        request_id: str | None = None,
    ) -> None:
        self.path = path
        super().__init__(
            f"schema drift at {path}: {message}",
            endpoint=endpoint,
            status=status,
            code="schema_drift",
            request_id=request_id,
            transient=False,
        )


class StoreError(BotError):
    """The SQLite store failed (locked, read-only, full, corrupt)."""


class NotifyError(BotError):
    """A notification could not be delivered. `permanent` means retrying is pointless."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        self.permanent = permanent
        super().__init__(message)
