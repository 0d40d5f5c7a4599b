"""The static keys (and region, endpoint) of an AWS profile, read from the shared files as
boto3, s3fs and the AWS CLI read them (``AWS_PROFILE``; ``~/.aws/credentials``,
``~/.aws/config``): obstore reads neither, and asked the instance metadata instead."""

from __future__ import annotations

import configparser
import os
from typing import Any

__all__ = ["S3Keys", "profile_settings"]

# what gives credentials without a profile's keys: these come first, as in boto3
_ENV_CREDENTIALS = (
    "AWS_ACCESS_KEY_ID",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
)
# profile settings that get credentials some other way (roles, SSO, a program)
_OTHER_WAYS = ("role_arn", "sso_session", "sso_start_url", "credential_process")
_ENV_REGION = ("AWS_REGION", "AWS_DEFAULT_REGION")
_ENV_ENDPOINT = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ENDPOINT")


class S3Keys:
    """An S3 credential provider of fixed keys, with the session token that goes with them
    (``None``: none, whatever ``AWS_SESSION_TOKEN`` says)."""

    __slots__ = ("_key", "_secret", "_token")

    def __init__(self, key: str, secret: str, token: str | None = None) -> None:
        self._key, self._secret, self._token = key, secret, token

    def __call__(self) -> dict[str, Any]:
        return {
            "access_key_id": self._key,
            "secret_access_key": self._secret,
            "token": self._token,
            "expires_at": None,
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}(***)"


def profile_settings(names: set[str]) -> tuple[S3Keys | None, dict[str, str]]:
    """The keys of the profile that ``AWS_PROFILE`` (or ``AWS_DEFAULT_PROFILE``, else
    ``default``) names, and the ``region`` / ``endpoint`` it sets, for an S3 store whose
    config has the settings ``names`` (lower case, no ``aws_`` prefix); a setting given there
    or in the environment is not taken from the profile.

    :raises ValueError: no keys given, and ``AWS_PROFILE`` names a profile that is not in the
        files, one with a key id and no secret, or one whose credentials come another way (a
        role, SSO, a program: boto3 takes that before the profile's own keys), which is not
        read here.
    """
    named = os.environ.get("AWS_PROFILE") or os.environ.get("AWS_DEFAULT_PROFILE")
    profile = named or "default"
    keys_given = bool(names & {"access_key_id", "credential_provider", "skip_signature"})
    keys_given = keys_given or _env(_ENV_CREDENTIALS)
    credentials = _section(_read("AWS_SHARED_CREDENTIALS_FILE", "credentials"), profile)
    config_file = _read("AWS_CONFIG_FILE", "config")
    config = _section(config_file, f"profile {profile}")  # ([profile default] too, as boto3)
    if profile == "default":
        config = _section(config_file, "default") or config
    settings = _region_and_endpoint(config or {}, names)
    if keys_given:
        return None, settings
    if named and credentials is None and config is None:
        files = f"{_path('AWS_SHARED_CREDENTIALS_FILE', 'credentials')} or "
        files += _path("AWS_CONFIG_FILE", "config")
        raise ValueError(f"AWS_PROFILE={named!r}: no such profile in {files}")
    other = [name for name in _OTHER_WAYS if config and config.get(name)]
    if other:  # (before its keys, as boto3: a role's profile's own keys are not its identity)
        if named:
            raise ValueError(
                f"AWS_PROFILE={named!r} gets its credentials by {other[0]}, which is not read "
                "here: export them (aws configure export-credentials --format env) or pass "
                "credential_provider= (obstore.auth.boto3.Boto3CredentialProvider)"
            )
        return None, settings
    for section in (credentials, config):
        if section and section.get("aws_access_key_id") and section.get("aws_secret_access_key"):
            keys = S3Keys(
                section["aws_access_key_id"],
                section["aws_secret_access_key"],
                section.get("aws_session_token") or None,
            )
            return keys, settings
        if named and section and section.get("aws_access_key_id"):
            raise ValueError(
                f"AWS_PROFILE={named!r} has an aws_access_key_id but no aws_secret_access_key "
                f"(in {_path('AWS_SHARED_CREDENTIALS_FILE', 'credentials')} or "
                f"{_path('AWS_CONFIG_FILE', 'config')})"
            )
    return None, settings


def _region_and_endpoint(config: dict[str, str], names: set[str]) -> dict[str, str]:
    """The profile's ``region`` and ``endpoint_url`` that neither ``names`` nor the
    environment set."""
    settings: dict[str, str] = {}
    region, endpoint = config.get("region"), config.get("endpoint_url")
    if region and not names & {"region", "default_region"} and not _env(_ENV_REGION):
        settings["region"] = region
    if endpoint and not names & {"endpoint", "endpoint_url"} and not _env(_ENV_ENDPOINT):
        settings["endpoint"] = endpoint
    return settings


def _env(names: tuple[str, ...]) -> bool:
    return any(os.environ.get(name) for name in names)


def _path(variable: str, name: str) -> str:
    return os.path.expanduser(os.environ.get(variable) or os.path.join("~", ".aws", name))


def _read(variable: str, name: str) -> configparser.RawConfigParser | None:
    """The shared file ``~/.aws/<name>`` (or where ``variable`` says), ``None`` if absent."""
    parser = configparser.RawConfigParser()
    try:
        with open(_path(variable, name), encoding="utf-8") as file:
            parser.read_file(file)
    except FileNotFoundError:
        return None
    except (OSError, configparser.Error, UnicodeDecodeError) as exc:
        if os.environ.get("AWS_PROFILE") or os.environ.get("AWS_DEFAULT_PROFILE"):
            where = _path(variable, name)
            raise ValueError(f"cannot read the AWS {name} file {where}: {exc}") from exc
        return None  # no profile asked for: as if it were absent
    return parser


def _section(parser: configparser.RawConfigParser | None, name: str) -> dict[str, str] | None:
    if parser is None or not parser.has_section(name):
        return None
    return {key.lower(): value.strip() for key, value in parser.items(name)}
