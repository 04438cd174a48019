"""A Dockerfile, and the pinned requirements it installs, for an image that serves one model version.

The image holds Steward and the exact distributions the model was registered with (``name==version``,
from the version's manifest and those of its further formats, such as ONNX Runtime for an ``onnx``
format); the model itself is loaded from the registry when the server starts, with its files checked
against their digests. Settings are passed in the environment at run time, never built in.
"""

from __future__ import annotations

import importlib.metadata
import json
import platform
import re

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from steward.deploy.export_kubernetes import RUN_AS
from steward.deploy.export_options import (
    CONTAINER_PORT,
    LABEL_PREFIX,
    LIVE_PATH,
    SECRET_KEYS,
    STEWARD_HOME,
    ExportOptions,
    image_reference,
    serve_command,
    steward_version,
)
from steward.errors import InvalidInput
from steward.registry.models import ModelVersion

REQUIREMENTS_FILE = "requirements.txt"
"""The requirements file the Dockerfile copies, beside it in the build context."""

_PYTHON = re.compile(r"^(?P<minor>3\.[0-9]+)(?:\.[0-9]+)?")


def _pin(text: str, version: ModelVersion) -> tuple[str, str]:
    """Return ``(canonical name, requirement pinned with ==)`` for one recorded requirement.

    A requirement the user recorded with a range (``tokenizers>=0.19``) is pinned to the version
    installed here when that version satisfies it, so the image installs what was tested.
    """
    try:
        requirement = Requirement(text)
    except InvalidRequirement as exc:
        raise InvalidInput(
            f"{version.uri} records a malformed requirement {text!r}: {exc}", {"field": "requirements"}
        ) from None
    name = canonicalize_name(requirement.name)
    if requirement.url:
        raise InvalidInput(
            f"{version.uri} requires {text!r} from a URL, which the image cannot pin with ==; "
            "register the version with a name==version requirement",
            {"field": "requirements", "value": text},
        )
    specifiers = list(requirement.specifier)
    if len(specifiers) == 1 and specifiers[0].operator in ("==", "===") and "*" not in specifiers[0].version:
        pinned = specifiers[0].version
    else:
        try:
            installed = importlib.metadata.version(requirement.name)
        except importlib.metadata.PackageNotFoundError:
            installed = None
        if installed is None or not requirement.specifier.contains(installed, prereleases=True):
            raise InvalidInput(
                f"{version.uri} requires {text!r}, which is not pinned, and no installed version satisfies "
                "it: install a matching version here, or register the version with name==version",
                {"field": "requirements", "value": text},
            )
        pinned = installed
    extras = f"[{','.join(sorted(requirement.extras))}]" if requirement.extras else ""
    marker = f"; {requirement.marker}" if requirement.marker else ""
    return name, f"{name}{extras}=={pinned}{marker}"


def image_requirements(version: ModelVersion) -> list[str]:
    """Every requirement of the image, each pinned with ``==``, sorted by name.

    ``steward-ml`` at the version installed here, then the version's recorded requirements, then those
    of its further formats; where two name the same distribution, the first wins.

    Raises:
        InvalidInput: If a recorded requirement is malformed, comes from a URL, or is a range that no
            installed version satisfies.
    """
    pins: dict[str, str] = {"steward-ml": f"steward-ml=={steward_version()}"}
    recorded = list(version.manifest.get("requirements") or ())
    for name in sorted(version.formats):
        recorded += list(version.formats[name].get("requirements") or ())
    for text in recorded:
        name, line = _pin(str(text).strip(), version)
        pins.setdefault(name, line)
    return [pins[name] for name in sorted(pins)]


def python_minor(version: ModelVersion) -> str:
    """The ``major.minor`` of the Python that registered the version, else of the Python running here."""
    match = _PYTHON.match(str(version.manifest.get("python_version") or ""))
    return match["minor"] if match else ".".join(platform.python_version_tuple()[:2])


def requirements_text(version: ModelVersion) -> str:
    """The ``requirements.txt`` the Dockerfile installs: a header, then one pinned requirement a line."""
    header = (
        f"# Requirements of {version.uri}, each pinned with ==; written by `steward deploy export`.\n"
        f"# The model was registered with Python {version.manifest.get('python_version') or 'unknown'}.\n"
    )
    return header + "".join(f"{line}\n" for line in image_requirements(version))


def dockerfile_text(version: ModelVersion, options: ExportOptions) -> str:
    """The Dockerfile: a slim Python base, the pinned requirements, an unprivileged user and the server.

    Args:
        version: The resolved model version.
        options: Checked export options (``base_image``, ``project``, ``alias``, ``secret``).
    """
    base = options.base_image or f"python:{python_minor(version)}-slim"
    command = serve_command(version, options)
    health = (
        "import urllib.request; "
        f"urllib.request.urlopen('http://127.0.0.1:{CONTAINER_PORT}{LIVE_PATH}', timeout=2)"
    )
    image_labels = {
        "org.opencontainers.image.title": image_reference(version, options).rsplit(":", 1)[0],
        "org.opencontainers.image.version": version.version,
        "org.opencontainers.image.description": f"Steward inference server for {version.uri}",
        f"{LABEL_PREFIX}model": version.model,
        f"{LABEL_PREFIX}version": version.version,
        f"{LABEL_PREFIX}manifest-digest": version.manifest_digest,
    }
    label_lines = " \\\n      ".join(f"{json.dumps(k)}={json.dumps(v)}" for k, v in image_labels.items())
    settings = ", ".join(SECRET_KEYS)
    return f"""\
# syntax=docker/dockerfile:1
# Serves {version.uri} with `steward serve`; written by `steward deploy export --target docker`.
#   docker build -t {image_reference(version, options)} .
#   docker run -p 8080:{CONTAINER_PORT} --env-file {options.secret}.env {image_reference(version, options)}
# The model is loaded from the registry at start. Its settings ({settings})
# come from the environment at run time: none is written into the image.
FROM {base}

ENV PYTHONDONTWRITEBYTECODE=1 \\
    PYTHONUNBUFFERED=1 \\
    PIP_DISABLE_PIP_VERSION_CHECK=1 \\
    STEWARD_HOME={STEWARD_HOME} \\
    STEWARD_PROJECT={options.project}

COPY {REQUIREMENTS_FILE} /opt/steward/{REQUIREMENTS_FILE}
RUN python -m pip install --no-cache-dir --requirement /opt/steward/{REQUIREMENTS_FILE} \\
 && useradd --system --uid {RUN_AS} --home-dir {STEWARD_HOME} --shell /usr/sbin/nologin steward \\
 && mkdir -p {STEWARD_HOME} \\
 && chown {RUN_AS} {STEWARD_HOME}

LABEL {label_lines}

USER {RUN_AS}
WORKDIR {STEWARD_HOME}
EXPOSE {CONTAINER_PORT}
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \\
  CMD {json.dumps(["python", "-c", health])}
ENTRYPOINT {json.dumps(command[:1])}
CMD {json.dumps(command[1:])}
"""
