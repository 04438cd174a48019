"""Where alerts go: webhooks (Slack-compatible JSON) and e-mail (SMTP), delivered with retries.

:func:`deliver` tries each channel up to ``attempts`` times with exponential backoff
(``backoff_s``, then twice that, …) and returns one :class:`~steward.monitoring.models.Delivery` per
channel; a channel that still fails is reported ``ok=False`` (its alert is then marked undelivered, and
kept). A failing channel never stops the others.

Secrets stay out of logs, errors and stored deliveries: a channel's name shows a webhook's scheme and
host only (a Slack webhook's path is its secret), error texts have the URL scrubbed, header values may
be read from the environment at send time (``{"Authorization": "env:ALERT_TOKEN"}``) so they need not
be stored with the monitor, and the SMTP password is read from ``STEWARD_SMTP_PASSWORD`` when sending.
"""

from __future__ import annotations

import json
import logging
import os
import smtplib
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any, Final
from urllib.parse import urlsplit

import httpx

from steward.errors import InvalidInput, ServiceUnavailable
from steward.monitoring.models import Channel, Delivery, Notification, Notifier

logger = logging.getLogger(__name__)

KINDS: Final = ("webhook", "email")
PASSWORD_ENV: Final = "STEWARD_SMTP_PASSWORD"
"""The environment variable the SMTP password is read from (never stored, never logged)."""
ENV_PREFIX: Final = "env:"
"""A header value ``env:NAME`` is the value of environment variable ``NAME`` at send time."""
MAX_ERROR: Final = 300


class WebhookNotifier:
    """POSTs each alert as Slack-compatible JSON: ``text`` and ``blocks`` for Slack (and Mattermost,
    Teams' Slack-compatible hooks …), plus a ``steward`` object holding the alert's JSON for programs.

    Args:
        url: The ``http(s)://`` URL to post to.
        headers: Extra request headers; a value ``env:NAME`` is read from the environment when sending.
        timeout: Seconds to wait for the receiver.

    Raises:
        InvalidInput: For a URL that is not ``http(s)://host…`` or headers that are not text.
    """

    def __init__(self, url: str, headers: Mapping[str, str] | None = None, timeout: float = 5) -> None:
        self.url = _check_url(url)
        self.headers = _check_headers(headers)
        self.timeout = float(timeout)
        parts = urlsplit(self.url)
        self.name = f"webhook:{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")

    def payload(self, notification: Notification) -> dict[str, Any]:
        """The JSON body posted for ``notification``."""
        alert = notification.alert
        context = f"monitor `{alert.monitor}` · endpoint `{alert.endpoint}` · alert `{alert.id}`"
        return {
            "text": f"{notification.title}\n{notification.text}",
            "blocks": [
                {"type": "header", "text": {"type": "plain_text", "text": notification.title[:150]}},
                {"type": "section", "text": {"type": "mrkdwn", "text": notification.text[:3000]}},
                {"type": "context", "elements": [{"type": "mrkdwn", "text": context}]},
            ],
            "steward": alert.to_json(),
        }

    def send(self, notification: Notification) -> None:
        """Post ``notification``.

        Raises:
            ServiceUnavailable: If the receiver cannot be reached or answers other than 2xx (the URL is
                not in the message).
            InvalidInput: If a header's ``env:NAME`` variable is not set.
        """
        headers = {k: _header_value(k, v) for k, v in self.headers.items()}
        try:
            response = httpx.post(
                self.url, json=self.payload(notification), headers=headers, timeout=self.timeout
            )
        except httpx.HTTPError as exc:
            raise ServiceUnavailable(
                f"{self.name}: {type(exc).__name__}: {_scrub(str(exc), self.url)}"
            ) from None
        if not 200 <= response.status_code < 300:
            body = _scrub(response.text[:120], self.url)
            raise ServiceUnavailable(f"{self.name} answered HTTP {response.status_code}: {body}")

    def __repr__(self) -> str:
        return f"WebhookNotifier({self.name!r})"


class EmailNotifier:
    """Sends each alert as a plain-text e-mail (the sentence, then the alert's JSON) over SMTP.

    Args:
        host: The SMTP server.
        port: Its port.
        sender: The From address.
        recipients: The To addresses.
        starttls: Upgrade the connection with STARTTLS (certificate checked) before logging in.
        username: Log in as this user, with the password in ``STEWARD_SMTP_PASSWORD``.
        timeout: Seconds to wait for the server.

    Raises:
        InvalidInput: For an empty host, a bad port or addresses without ``@``.
    """

    def __init__(
        self,
        host: str,
        port: int,
        sender: str,
        recipients: Sequence[str],
        starttls: bool = False,
        username: str | None = None,
        timeout: float = 10,
    ) -> None:
        if not isinstance(host, str) or not host.strip():
            raise InvalidInput("an e-mail channel needs the SMTP host", {"field": "channels.host"})
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise InvalidInput(f"the SMTP port must be 1-65535, not {port!r}", {"field": "channels.port"})
        self.host, self.port = host.strip(), port
        self.sender = _address(sender, "channels.sender")
        if isinstance(recipients, str) or not recipients:
            raise InvalidInput("an e-mail channel needs at least one recipient", {"field": "channels.target"})
        self.recipients = tuple(_address(r, "channels.target") for r in recipients)
        if username is not None and (not isinstance(username, str) or not username):
            raise InvalidInput("the SMTP username must be text", {"field": "channels.username"})
        self.starttls, self.username, self.timeout = bool(starttls), username, float(timeout)
        self.name = f"email:{','.join(self.recipients)}"

    def message(self, notification: Notification) -> EmailMessage:
        """The e-mail sent for ``notification``."""
        message = EmailMessage()
        message["Subject"] = notification.title
        message["From"] = self.sender
        message["To"] = ", ".join(self.recipients)
        message["X-Steward-Alert"] = notification.alert.id
        alert = json.dumps(notification.alert.to_json(), indent=2, sort_keys=True)
        message.set_content(f"{notification.text}\n\n-- the alert --\n{alert}\n")
        return message

    def send(self, notification: Notification) -> None:
        """Send ``notification``.

        Raises:
            InvalidInput: If a username is set but ``STEWARD_SMTP_PASSWORD`` is not.
            ServiceUnavailable: If the server cannot be reached or refuses the login or the message.
        """
        password = None
        if self.username is not None:
            password = os.environ.get(PASSWORD_ENV)
            if not password:
                raise InvalidInput(
                    f"the e-mail channel logs in as {self.username!r} but {PASSWORD_ENV} is not set",
                    {"field": "channels.username"},
                )
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                if self.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if self.username is not None and password is not None:
                    smtp.login(self.username, password)
                smtp.send_message(self.message(notification))
        except (OSError, smtplib.SMTPException) as exc:
            text = str(exc).replace(password, "***") if password else str(exc)
            raise ServiceUnavailable(
                f"{self.name} via {self.host}:{self.port}: {type(exc).__name__}: {text}"
            ) from None

    def __repr__(self) -> str:
        return f"EmailNotifier({self.name!r}, {self.host}:{self.port})"


def check_channel(channel: Channel) -> Channel:
    """Return ``channel`` if a notifier can be built from it (see :func:`notifier_for`).

    Raises:
        InvalidInput: Naming the field at fault (``channels.kind``, ``channels.target``, …).
    """
    notifier_for(channel)
    return channel


def notifier_for(channel: Channel) -> Notifier:
    """The notifier of one channel: ``webhook`` (``target`` the URL; option ``headers``, ``timeout``) or
    ``email`` (``target`` the comma-separated recipients; options ``host``, ``port`` (25, or 587 with
    ``starttls``), ``sender``, ``starttls``, ``username``, ``timeout``).

    Raises:
        InvalidInput: For an unknown kind, an unknown option or a bad value, naming the field.
    """
    options = dict(channel.options)
    if channel.kind == "webhook":
        _only(options, {"headers", "timeout"}, "webhook")
        return WebhookNotifier(channel.target, options.get("headers"), _timeout(options.get("timeout", 5)))
    if channel.kind == "email":
        _only(options, {"host", "port", "sender", "starttls", "username", "timeout"}, "email")
        starttls = options.get("starttls", False)
        if not isinstance(starttls, bool):
            raise InvalidInput("starttls must be true or false", {"field": "channels.starttls"})
        recipients = [r.strip() for r in channel.target.split(",") if r.strip()]
        return EmailNotifier(
            options.get("host", ""),
            options.get("port", 587 if starttls else 25),
            options.get("sender", ""),
            recipients,
            starttls=starttls,
            username=options.get("username"),
            timeout=_timeout(options.get("timeout", 10)),
        )
    raise InvalidInput(
        f"unknown channel kind {channel.kind!r}: use {' or '.join(KINDS)}", {"field": "channels.kind"}
    )


def deliver(
    notification: Notification,
    notifiers: Sequence[Notifier],
    *,
    attempts: int = 4,
    backoff_s: float = 0.5,
    sleep: Callable[[float], None] = time.sleep,
) -> list[Delivery]:
    """Deliver ``notification`` to every notifier, retrying each with exponential backoff.

    Args:
        notification: What to send.
        notifiers: The channels.
        attempts: Tries per channel (at least 1).
        backoff_s: The wait after the first failure; it doubles after each further one.
        sleep: How to wait (tests pass one that records instead).

    Returns:
        One delivery per notifier, in order: ``ok``, the attempts made, and the last error (scrubbed of
        secrets) when it gave up.
    """
    attempts = max(1, int(attempts))
    done: list[Delivery] = []
    for notifier in notifiers:
        error = ""
        for attempt in range(1, attempts + 1):
            try:
                notifier.send(notification)
            except Exception as exc:  # any failure of a channel is its delivery's outcome, never the run's
                error = (getattr(exc, "message", None) or str(exc) or type(exc).__name__)[:MAX_ERROR]
                if attempt < attempts:
                    sleep(backoff_s * 2 ** (attempt - 1))
                continue
            done.append(Delivery(notifier.name, datetime.now(UTC), True, attempt))
            break
        else:
            logger.warning("alert %s not delivered to %s after %d attempts: %s",
                           notification.alert.id, notifier.name, attempts, error)  # fmt: skip
            done.append(Delivery(notifier.name, datetime.now(UTC), False, attempts, error))
    return done


# -- checks -------------------------------------------------------------------------------------------


def _check_url(url: object) -> str:
    if not isinstance(url, str):
        raise InvalidInput("a webhook channel needs a URL", {"field": "channels.target"})
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(
            "a webhook URL must be http(s)://host/…", {"field": "channels.target", "scheme": parts.scheme}
        )
    return url.strip()


def _check_headers(headers: object) -> dict[str, str]:
    if headers is None:
        return {}
    if not isinstance(headers, Mapping) or not all(
        isinstance(k, str) and k and isinstance(v, str) for k, v in headers.items()
    ):
        raise InvalidInput("webhook headers must map header names to text", {"field": "channels.headers"})
    return dict(headers)


def _header_value(name: str, value: str) -> str:
    if not value.startswith(ENV_PREFIX):
        return value
    variable = value[len(ENV_PREFIX) :]
    found = os.environ.get(variable)
    if found is None:
        raise InvalidInput(
            f"webhook header {name!r} is read from ${variable}, which is not set",
            {"field": "channels.headers"},
        )
    return found


def _address(value: object, field: str) -> str:
    if not isinstance(value, str) or "@" not in value or any(c.isspace() for c in value.strip()):
        raise InvalidInput(f"{value!r} is not an e-mail address", {"field": field})
    return value.strip()


def _timeout(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 120:
        raise InvalidInput("a channel's timeout must be 0-120 seconds", {"field": "channels.timeout"})
    return float(value)


def _only(options: Mapping[str, Any], known: set[str], kind: str) -> None:
    unknown = sorted(set(options) - known)
    if unknown:
        raise InvalidInput(
            f"unknown {kind} channel option {unknown[0]!r}; known: {', '.join(sorted(known))}",
            {"field": f"channels.{unknown[0]}"},
        )


def _scrub(text: str, url: str) -> str:
    """``text`` without the URL or its path (a webhook's path is often its secret)."""
    path = urlsplit(url).path
    text = text.replace(url, "<webhook>")
    return text.replace(path, "/<redacted>") if len(path) > 1 else text
