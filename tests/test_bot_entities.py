"""The bot's entities read the examples of Mastodon's documentation (docs/examples/, each
cited in docs/bots.md), their absent and null variants, and round-trip through JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import aiomasto
from aiomasto.entities import (
    Context,
    Instance,
    InstanceV1,
    MediaAttachment,
    Notification,
    Poll,
    Status,
)

EXAMPLES = Path(__file__).parent.parent / "docs" / "examples"


def example(name: str) -> Any:
    return json.loads((EXAMPLES / f"{name}.json").read_text(encoding="utf-8"))


def test_the_status_example_reads_with_its_card_account_and_application() -> None:
    status = aiomasto.from_json(Status, example("status"))
    assert status.id == "103270115826048975"
    assert status.created_at == datetime(2019, 12, 8, 3, 48, 33, 901000, tzinfo=UTC)
    assert status.account.acct == "Gargron"
    assert status.visibility == "public"
    assert status.reblog is None
    assert status.application is not None
    assert status.application.name == "Web"
    assert status.card is not None
    assert status.card.image is None
    assert status.poll is None
    assert (status.favourited, status.bookmarked, status.pinned) == (False, False, None)
    assert status.edited_at is None


def test_a_boost_holds_the_boosted_status() -> None:
    original = example("status")
    boost = {**original, "id": "2", "content": "", "reblog": original}
    status = aiomasto.from_json(Status, boost)
    assert status.reblog is not None
    assert status.reblog.id == "103270115826048975"


def test_a_status_with_only_its_required_keys_reads_with_defaults() -> None:
    status = aiomasto.from_json(
        Status,
        {
            "id": "1",
            "created_at": "2024-01-01T00:00:00Z",
            "account": {"id": "2", "username": "a", "acct": "a"},
        },
    )
    assert status.visibility == "public"
    assert status.media_attachments == ()
    assert status.favourited is None  # no user token: unknown, not False


def test_nulls_where_defaults_exist_read_as_absent() -> None:
    data = example("status")
    data.update(spoiler_text=None, media_attachments=None, replies_count=None, card=None)
    status = aiomasto.from_json(Status, data)
    assert status.spoiler_text == ""
    assert status.media_attachments == ()
    assert status.replies_count == 0
    assert status.card is None


def test_an_unknown_visibility_is_kept_as_sent() -> None:
    status = aiomasto.from_json(Status, {**example("status"), "visibility": "local"})
    assert status.visibility == "local"


def test_a_status_without_its_account_is_a_decode_error_naming_the_field() -> None:
    data = example("status")
    del data["account"]
    with pytest.raises(aiomasto.DecodeError) as info:
        aiomasto.from_json(Status, data)
    assert info.value.field == "account"


def test_the_poll_example_reads_with_own_votes() -> None:
    poll = aiomasto.from_json(Poll, example("poll"))
    assert poll.expired
    assert not poll.multiple
    assert poll.voters_count is None
    assert [o.votes_count for o in poll.options] == [6, 4]
    assert poll.own_votes == (1,)


def test_poll_results_hidden_are_none() -> None:
    data = example("poll")
    data["options"] = [{"title": "accept", "votes_count": None}]
    data["expires_at"] = None
    poll = aiomasto.from_json(Poll, data)
    assert poll.options[0].votes_count is None
    assert poll.expires_at is None


@pytest.mark.parametrize("name", ["media_image", "media_audio"])
def test_the_media_examples_read(name: str) -> None:
    media = aiomasto.from_json(MediaAttachment, example(name))
    assert media.url is not None
    assert media.url.startswith("https://files.mastodon.social/")
    assert media.type in ("image", "audio")


def test_media_still_processing_has_no_url() -> None:
    media = aiomasto.from_json(
        MediaAttachment, {**example("media_image"), "url": None, "blurhash": None}
    )
    assert media.url is None


@pytest.mark.parametrize("name", ["notification_mention", "notification_favourite"])
def test_the_notification_examples_read(name: str) -> None:
    notification = aiomasto.from_json(Notification, example(name))
    assert notification.type in ("mention", "favourite")
    assert notification.status is not None
    assert notification.group_key is None  # before 4.3


@pytest.mark.parametrize(
    "kind",
    [
        "follow",
        "follow_request",
        "admin.sign_up",
        "severed_relationships",
        "moderation_warning",
        "quote",
        "a_type_from_2030",
    ],
)
def test_every_notification_type_is_kept_as_a_string(kind: str) -> None:
    data = example("notification_mention")
    data.update(type=kind, status=None)
    notification = aiomasto.from_json(Notification, data)
    assert notification.type == kind
    assert notification.status is None


def test_the_instance_example_reads_its_streaming_url_and_limits() -> None:
    instance = aiomasto.from_json(Instance, example("instance"))
    assert instance.domain == "mastodon.social"
    assert instance.configuration.urls.streaming == "wss://mastodon.social"
    assert instance.configuration.statuses.max_characters == 500
    assert instance.configuration.media_attachments.image_size_limit == 10485760
    assert instance.contact.account is not None
    assert instance.usage is not None
    assert instance.usage.users.active_month == 123122
    assert instance.api_versions.mastodon is None  # before 4.3


def test_a_bare_instance_reads_with_mastodons_defaults() -> None:
    instance = aiomasto.from_json(Instance, {"domain": "gts.example", "configuration": None})
    assert instance.configuration.statuses.max_characters == 500
    assert instance.configuration.urls.streaming is None


def test_a_v1_instance_maps_into_the_v2_shape() -> None:
    v1 = aiomasto.from_json(
        InstanceV1,
        {
            "uri": "https://akkoma.example",
            "title": "Akkoma",
            "short_description": "short",
            "email": "admin@akkoma.example",
            "version": "2.7.2 (compatible; Akkoma 3.16.0)",
            "urls": {"streaming_api": "wss://akkoma.example"},
            "thumbnail": "https://akkoma.example/thumb.png",
            "registrations": True,
            "configuration": {"statuses": {"max_characters": 5000}},
        },
    )
    instance = Instance.from_v1(v1)
    assert instance.domain == "akkoma.example"
    assert instance.configuration.urls.streaming == "wss://akkoma.example"
    assert instance.configuration.statuses.max_characters == 5000
    assert instance.registrations.enabled is True
    assert instance.contact.email == "admin@akkoma.example"
    assert instance.thumbnail is not None


@pytest.mark.parametrize(
    ("cls", "name"),
    [
        (Status, "status"),
        (Poll, "poll"),
        (MediaAttachment, "media_image"),
        (Notification, "notification_mention"),
        (Instance, "instance"),
    ],
)
def test_to_json_and_from_json_round_trip(cls: type[Any], name: str) -> None:
    entity = aiomasto.from_json(cls, example(name))
    data = aiomasto.to_json(entity)
    again = aiomasto.from_json(cls, json.loads(json.dumps(data)))
    assert again == entity


def test_to_json_gives_json_types_only() -> None:
    context = Context(ancestors=(aiomasto.from_json(Status, example("status")),))
    data = aiomasto.to_json(context)
    assert isinstance(data["ancestors"], list)
    assert isinstance(data["ancestors"][0]["created_at"], str)
    assert data["descendants"] == []
