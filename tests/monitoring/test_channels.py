"""Alert channels against real receivers: an HTTP server on 127.0.0.1 that fails the first N requests,
and an SMTP server (aiosmtpd) on a free local port."""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from steward.errors import InvalidInput
from steward.monitoring.channels import (
    EmailNotifier,
    WebhookNotifier,
    check_channel,
    deliver,
    notifier_for,
)
from steward.monitoring.models import Alert, Channel, Notification

AT = datetime(2025, 3, 4, 10, 15, tzinfo=UTC)


def notification() -> Notification:
    alert = Alert(
        id="a1", monitor="churn-drift", endpoint="churn", rule="psi(income) > 0.2", state="firing",
        value=0.41, threshold=0.2, count=1, first_at=AT, last_at=AT, resolved_at=None, delivered=None,
    )  # fmt: skip
    return Notification(alert, "churn-drift: psi(income) > 0.2", "psi(income) is 0.41 (rule: > 0.2)")


@dataclass
class Receiver:
    """What the local webhook receiver saw."""

    url: str
    fail_first: int
    bodies: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    requests: int = 0


@pytest.fixture
def receiver() -> Iterator[Any]:
    """Start receivers: ``receiver(fail_first=N)`` answers 503 to its first N posts, then 200."""
    servers: list[ThreadingHTTPServer] = []

    def start(fail_first: int = 0) -> Receiver:
        state = Receiver("", fail_first)

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                state.requests += 1
                state.headers.append(dict(self.headers))
                if state.requests <= state.fail_first:
                    self.send_response(503)
                    self.end_headers()
                    self.wfile.write(b"busy")
                    return
                state.bodies.append(json.loads(body))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(server)
        state.url = f"http://127.0.0.1:{server.server_address[1]}/services/T000/B000/secret-token"
        return state

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_a_webhook_is_retried_with_backoff_until_it_takes(
    receiver: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    hook = receiver(fail_first=2)
    monkeypatch.setenv("ALERT_TOKEN", "t0ken")
    waits: list[float] = []
    notifier = WebhookNotifier(hook.url, {"Authorization": "env:ALERT_TOKEN", "X-Team": "ml"})

    [delivery] = deliver(notification(), [notifier], attempts=4, backoff_s=0.5, sleep=waits.append)

    assert (delivery.ok, delivery.attempts, delivery.error) == (True, 3, "")
    assert waits == [0.5, 1.0]
    assert hook.requests == 3
    [body] = hook.bodies
    assert body["text"].startswith("churn-drift: psi(income) > 0.2")
    assert body["blocks"][0]["text"]["text"] == "churn-drift: psi(income) > 0.2"
    assert body["steward"] == notification().alert.to_json()
    assert hook.headers[-1]["Authorization"] == "t0ken" and hook.headers[-1]["X-Team"] == "ml"


def test_a_webhook_that_keeps_failing_is_reported_undelivered_without_its_secret(
    receiver: Any, caplog: pytest.LogCaptureFixture
) -> None:
    hook = receiver(fail_first=100)
    waits: list[float] = []
    with caplog.at_level(logging.WARNING):
        [delivery] = deliver(notification(), [WebhookNotifier(hook.url)], attempts=4, sleep=waits.append)
    assert (delivery.ok, delivery.attempts) == (False, 4)
    assert waits == [0.5, 1.0, 2.0]
    assert "HTTP 503" in delivery.error
    assert delivery.channel.startswith("webhook:http://127.0.0.1:")
    assert "secret-token" not in delivery.error + delivery.channel + caplog.text
    assert "not delivered" in caplog.text


def test_an_unreachable_webhook_fails_and_the_next_channel_still_gets_the_alert(receiver: Any) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}/hook"
    good = receiver()
    deliveries = deliver(
        notification(), [WebhookNotifier(closed, timeout=2), WebhookNotifier(good.url)], sleep=lambda _: None
    )
    assert [d.ok for d in deliveries] == [False, True]
    assert "ConnectError" in deliveries[0].error
    assert len(good.bodies) == 1


def test_a_webhook_header_from_an_unset_variable_fails_the_delivery(receiver: Any) -> None:
    hook = receiver()
    notifier = WebhookNotifier(hook.url, {"Authorization": "env:STEWARD_TEST_UNSET_TOKEN"})
    [delivery] = deliver(notification(), [notifier], attempts=1)
    assert not delivery.ok and "STEWARD_TEST_UNSET_TOKEN" in delivery.error
    assert hook.requests == 0


def test_a_webhook_name_hides_the_url_path() -> None:
    notifier = WebhookNotifier("https://hooks.slack.com/services/T/B/XXXX")
    assert notifier.name == "webhook:https://hooks.slack.com"
    assert "XXXX" not in repr(notifier)


# -- e-mail -------------------------------------------------------------------------------------------


class Inbox:
    """An aiosmtpd handler keeping what arrives."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd's hook name)
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def smtp() -> Iterator[tuple[Controller, Inbox, list[tuple[str, str]]]]:
    """A local SMTP server accepting logins (without TLS, for the test) whose password is 's3cret'."""
    inbox, logins = Inbox(), []

    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        assert isinstance(data, LoginPassword)
        logins.append((data.login.decode(), data.password.decode()))
        return AuthResult(success=data.password == b"s3cret", handled=False)

    controller = Controller(
        inbox, hostname="127.0.0.1", port=_free_port(), authenticator=authenticate, auth_require_tls=False
    )
    controller.start()
    yield controller, inbox, logins
    controller.stop()


def test_an_email_alert_arrives_with_the_alert_json(smtp: Any) -> None:
    controller, inbox, _ = smtp
    notifier = notifier_for(
        Channel("email", "ops@example.com, ml@example.com",
                {"host": "127.0.0.1", "port": controller.port, "sender": "steward@example.com"})
    )  # fmt: skip
    [delivery] = deliver(notification(), [notifier])
    assert delivery.ok and delivery.channel == "email:ops@example.com,ml@example.com"
    [(sender, recipients, content)] = inbox.messages
    assert sender == "steward@example.com" and recipients == ["ops@example.com", "ml@example.com"]
    mail = message_from_bytes(content)
    assert mail["Subject"] == "churn-drift: psi(income) > 0.2"
    assert mail["X-Steward-Alert"] == "a1"
    payload = mail.get_payload(decode=True)
    assert isinstance(payload, bytes)
    body = payload.decode()
    assert "psi(income) is 0.41" in body and '"rule": "psi(income) > 0.2"' in body


def test_an_email_login_uses_the_password_from_the_environment_and_never_logs_it(
    smtp: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    controller, inbox, logins = smtp
    notifier = EmailNotifier("127.0.0.1", controller.port, "steward@example.com", ["ops@example.com"],
                             username="steward")  # fmt: skip
    monkeypatch.delenv("STEWARD_SMTP_PASSWORD", raising=False)
    [missing] = deliver(notification(), [notifier], attempts=1)
    assert not missing.ok and "STEWARD_SMTP_PASSWORD is not set" in missing.error

    monkeypatch.setenv("STEWARD_SMTP_PASSWORD", "wrong-pass")
    with caplog.at_level(logging.DEBUG):
        [refused] = deliver(notification(), [notifier], attempts=2, sleep=lambda _: None)
    assert not refused.ok and refused.attempts == 2 and "SMTPAuthenticationError" in refused.error
    assert "wrong-pass" not in refused.error + caplog.text

    monkeypatch.setenv("STEWARD_SMTP_PASSWORD", "s3cret")
    [delivery] = deliver(notification(), [notifier])
    assert delivery.ok and logins[-1] == ("steward", "s3cret") and len(inbox.messages) == 1


def test_starttls_asked_of_a_server_without_it_is_not_sent_in_the_clear(smtp: Any) -> None:
    controller, inbox, _ = smtp
    notifier = EmailNotifier("127.0.0.1", controller.port, "s@example.com", ["o@example.com"], starttls=True)
    [delivery] = deliver(notification(), [notifier], attempts=1)
    assert not delivery.ok and "STARTTLS" in delivery.error
    assert inbox.messages == []


# -- channels from their stored form ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("channel", "field"),
    [
        (Channel("sms", "+100"), "channels.kind"),
        (Channel("webhook", "ftp://example.com/x"), "channels.target"),
        (Channel("webhook", "https://example.com", {"retries": 3}), "channels.retries"),
        (Channel("webhook", "https://example.com", {"headers": {"A": 1}}), "channels.headers"),
        (Channel("webhook", "https://example.com", {"timeout": 0}), "channels.timeout"),
        (Channel("email", "ops@example.com", {"sender": "s@example.com"}), "channels.host"),
        (Channel("email", "ops", {"host": "smtp", "sender": "s@example.com"}), "channels.target"),
        (Channel("email", "", {"host": "smtp", "sender": "s@example.com"}), "channels.target"),
        (Channel("email", "o@x.org", {"host": "smtp", "sender": "s@x.org", "port": 0}), "channels.port"),
        (Channel("email", "o@x.org", {"host": "smtp", "sender": "nobody"}), "channels.sender"),
        (Channel("email", "o@x.org", {"host": "h", "sender": "s@x", "starttls": "yes"}), "channels.starttls"),
    ],
)  # fmt: skip
def test_bad_channels_name_the_field(channel: Channel, field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        check_channel(channel)
    assert caught.value.details["field"] == field


def test_email_port_defaults_follow_starttls() -> None:
    plain = notifier_for(Channel("email", "o@example.com", {"host": "smtp", "sender": "s@example.com"}))
    tls = notifier_for(
        Channel("email", "o@example.com", {"host": "smtp", "sender": "s@example.com", "starttls": True})
    )
    assert isinstance(plain, EmailNotifier) and isinstance(tls, EmailNotifier)
    assert (plain.port, tls.port) == (25, 587)
