"""``SecretURL``: a URL that equals its string and prints without its password."""

from __future__ import annotations

import pytest

from hurtle import SecretURL
from hurtle.urls import display_url

URL = "redis://user:pa55word@host:6379/0?prefix=app"


def test_a_secret_url_prints_masked_whichever_way_it_is_printed() -> None:
    url = SecretURL(URL)
    for shown in (str(url), repr(url), f"{url}", f"{url!r}", f"{url:>60}", "%s %r" % (url, url)):  # noqa: UP031
        assert "pa55word" not in shown
        assert "redis://user:***@host:6379/0?prefix=app" in shown


def test_a_secret_url_equals_and_hashes_as_its_string() -> None:
    url = SecretURL(URL)
    assert url == URL and URL == url and url == SecretURL(URL)  # noqa: SIM300 - both sides, on purpose
    assert url != "redis://other" and url != 1
    assert {url: 1}[SecretURL(URL)] == 1 and hash(url) == hash(URL)
    assert url.reveal() == URL and SecretURL(url).reveal() == URL
    assert url.scheme == "redis" and SecretURL("AMQP://h").scheme == "amqp"


def test_a_secret_url_is_made_of_a_string_only() -> None:
    with pytest.raises(TypeError):
        SecretURL(b"redis://h")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        # Malformed URLs are shown in the errors that refuse them: masked all the same.
        ("redis://user:pa/ss@host:6379/0", "redis://user:***@host:6379/0"),
        ("redis://user:pa?ss#word@host:6379/0", "redis://user:***@host:6379/0"),
        ("user:pa55@host:6379", "user:***@host:6379"),
        ("redis://:@host/0", "redis://:***@host/0"),
        ("redis://host/0?PassWord=x&auth_token=y", "redis://host/0?PassWord=***&auth_token=***"),
    ],
)
def test_a_malformed_url_is_masked_too(url: str, shown: str) -> None:
    assert display_url(url) == shown


def test_scrub_masks_the_pieces_of_a_password_a_library_quotes_in_its_error() -> None:
    url = SecretURL("redis://user:pa55/word@host:6379/0")
    message = "Port could not be cast to integer value as 'pa55'"
    assert url.scrub(message) == "Port could not be cast to integer value as '***'"
