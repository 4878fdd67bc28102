"""Where the token may go (Destinations), Zoom hosts, API base URLs and request paths."""

from __future__ import annotations

import logging

import pytest
import yarl

from zoom_s2s.client.urls import Destinations, api_base, is_zoom_host, quote_path
from zoom_s2s.errors import ConfigurationError


@pytest.mark.parametrize(
    "host",
    ["zoom.us", "api.zoom.us", "eu01api-www4local.zoom.us", "API.ZOOM.US", "api.zoomgov.com"],
)
def test_zoom_hosts(host: str) -> None:
    assert is_zoom_host(host)


@pytest.mark.parametrize(
    "host", ["", None, "evilzoom.us", "zoom.us.example.com", "zoom.usa", "example.com", "us"]
)
def test_hosts_that_are_not_zooms(host: str | None) -> None:
    assert not is_zoom_host(host)


def destinations(use_token_api_url: bool = True) -> Destinations:
    return Destinations(
        "https://api.zoom.us/v2", use_token_api_url=use_token_api_url, allow_insecure_http=False
    )


@pytest.mark.parametrize(
    "url",
    [
        "https://api.zoom.us/v2/users/me",
        "https://API.zoom.us:443/v2/users",
        "https://api.zoom.us/other/path",
    ],
)
def test_the_configured_origin_gets_the_token(url: str) -> None:
    assert destinations(use_token_api_url=False).allows(yarl.URL(url))


@pytest.mark.parametrize(
    "url",
    [
        "http://api.zoom.us/v2/users/me",  # another scheme
        "https://api.zoom.us:8443/v2/users/me",  # another port
        "https://zoom.us/v2/users/me",  # another Zoom host, not configured
        "https://example.com/v2/users/me",
    ],
)
def test_every_other_origin_gets_no_token(url: str) -> None:
    assert not destinations(use_token_api_url=False).allows(yarl.URL(url))


def test_a_trusted_api_url_adds_its_origin_only_when_enabled() -> None:
    regional = "https://eu01api-www4local.zoom.us"
    url = yarl.URL(regional + "/v2/users/me")
    assert not destinations(use_token_api_url=False).allows(url, regional)
    enabled = destinations()
    assert not enabled.allows(url)  # not seen yet
    assert enabled.allows(url, regional)
    assert enabled.allows(url)  # remembered
    assert enabled.base_for(regional + "/") == regional + "/v2"


@pytest.mark.parametrize(
    ("api_url", "target"),
    [
        ("https://evil.example.com", "https://evil.example.com/v2/users"),
        ("https://zoom.us.evil.example.com", "https://zoom.us.evil.example.com/v2/users"),
        ("http://eu01api.zoom.us", "http://eu01api.zoom.us/v2/users"),  # plain http
        ("ftp://eu01api.zoom.us", "https://eu01api.zoom.us/v2/users"),
        ("https://eu01api.zoom.us?x=1", "https://eu01api.zoom.us/v2/users"),
        ("not a url", "https://eu01api.zoom.us/v2/users"),
    ],
)
def test_an_untrusted_api_url_is_ignored_with_one_warning(
    api_url: str, target: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "zoom_s2s.client")
    rule = destinations()
    for _ in range(3):
        assert rule.base_for(api_url) == "https://api.zoom.us/v2"
        assert not rule.allows(yarl.URL(target), api_url)
    assert len(caplog.records) == 1
    assert "ignoring the token's api_url" in caplog.records[0].getMessage()


def test_an_api_url_on_the_configured_host_is_trusted() -> None:
    rule = Destinations(
        "http://127.0.0.1:8000/v2", use_token_api_url=True, allow_insecure_http=False
    )
    assert rule.base_for("http://127.0.0.1:9000") == "http://127.0.0.1:9000/v2"
    assert rule.base_for("http://localhost:9000") == "http://127.0.0.1:8000/v2"


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8000/v2", "http://localhost/v2", "http://[::1]:81/v2"]
)
def test_plain_http_to_loopback_is_accepted(url: str) -> None:
    assert api_base(url + "/", "base_url") == url


def test_plain_http_elsewhere_needs_allow_insecure_http() -> None:
    with pytest.raises(ConfigurationError, match="allow_insecure_http"):
        api_base("http://api.example.com/v2", "base_url")
    assert api_base("http://api.example.com/v2", "base_url", allow_insecure_http=True)


@pytest.mark.parametrize(
    ("path", "quoted"),
    [("users/me", "/users/me"), ("/users/a b", "/users/a%20b"), ("/users/a%40b", "/users/a%40b")],
)
def test_paths_are_quoted_once(path: str, quoted: str) -> None:
    assert quote_path(path) == quoted
