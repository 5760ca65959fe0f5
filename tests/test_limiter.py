"""The client-side rate-limit bookkeeping and the retry schedule, with an injected clock."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest
from yarl import URL

from aiomasto import Retry
from aiomasto._limiter import Bucket, RateLimiter, request_kind, retry_after, server_skew
from aiomasto._protocol import RawResponse
from aiomasto.policies import RateLimitPolicy
from aiomasto.ratelimit import RateLimit, parse_retry_after

T0 = 1_786_000_000.0


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def headers(limit: int, remaining: int, reset: float, **extra: str) -> dict[str, str]:
    return {
        "X-RateLimit-Limit": str(limit),
        "X-RateLimit-Remaining": str(remaining),
        "X-RateLimit-Reset": iso(reset),
        **extra,
    }


def answered(bucket: Bucket) -> None:
    """Every request sent so far got its answer."""
    while bucket.in_flight:
        bucket.answered()


def observe(rl: RateLimiter, bucket: Bucket, headers: dict[str, str], status: int) -> None:
    """The answer to one request of ``bucket`` arrives with these headers."""
    response = RawResponse(
        method="GET",
        url=URL("https://m.example/api/v1/x"),
        status=status,
        headers=headers,
        body=b"",
    )
    rl.observe(bucket, response)


def limiter(policy: RateLimitPolicy = "wait") -> tuple[RateLimiter, Clock]:
    clock = Clock()
    return RateLimiter(policy, clock), clock


def test_until_the_server_speaks_one_request_probes_and_the_rest_wait() -> None:
    rl, _ = limiter()
    bucket = rl.bucket("tok", "api")
    assert rl.reserve(bucket) == (0.0, None)  # the probe goes
    assert rl.reserve(bucket) == (None, None)  # everyone else waits for its answer
    news = bucket.heard
    observe(rl, bucket, headers(300, 299, T0 + 100), 200)
    assert news.is_set()  # the waiters wake up
    assert not bucket.heard.is_set()  # and the next wait is for the next answer
    assert rl.reserve(bucket) == (0.0, None)
    assert bucket.remaining == 298


def test_a_server_without_headers_is_never_held_back() -> None:
    rl, _ = limiter()
    bucket = rl.bucket("", "api")
    rl.reserve(bucket)
    observe(rl, bucket, {}, 200)
    assert all(rl.reserve(bucket) == (0.0, None) for _ in range(1000))


def test_a_transport_failure_lets_the_next_request_probe() -> None:
    rl, _ = limiter()
    bucket = rl.bucket("tok", "api")
    rl.reserve(bucket)
    rl.release(bucket)
    assert rl.reserve(bucket) == (0.0, None)


def test_a_proxy_error_page_does_not_pass_for_a_server_without_limits() -> None:
    rl, _ = limiter()
    bucket = rl.bucket("tok", "api")
    rl.reserve(bucket)
    observe(rl, bucket, {}, 502)
    assert not bucket.headerless
    assert rl.reserve(bucket) == (0.0, None)  # probes again
    assert rl.reserve(bucket) == (None, None)


def test_a_spent_window_with_an_unknown_reset_waits_for_the_answers_on_their_way() -> None:
    rl, clock = limiter()
    bucket = rl.bucket("tok", "api")
    rl.reserve(bucket)
    observe(rl, bucket, headers(2, 1, T0 + 1), 200)
    clock.now = T0 + 1.1  # the window rolls over; its length is not known yet
    assert rl.reserve(bucket) == (0.0, None)
    assert rl.reserve(bucket) == (0.0, None)
    assert rl.reserve(bucket) == (None, None)  # two on their way: wait for their answers
    observe(rl, bucket, headers(2, 0, T0 + 2), 200)
    delay, reason = rl.reserve(bucket)
    assert reason == "budget_spent"
    assert delay == pytest.approx(0.95)


def test_a_report_from_a_window_that_has_ended_changes_nothing() -> None:
    rl, clock = limiter()
    bucket = rl.bucket("tok", "api")
    rl.reserve(bucket)
    observe(rl, bucket, headers(10, 9, T0 + 1), 200)
    clock.now = T0 + 1.1
    for _ in range(5):
        rl.reserve(bucket)
    observe(rl, bucket, headers(10, 2, T0 + 1), 200)  # a slow answer from the old window
    assert bucket.remaining == 5


def test_mastodon_resets_are_taken_to_the_whole_second_others_as_sent() -> None:
    rl, _ = limiter()
    mastodon, gotosocial = rl.bucket("a", "api"), rl.bucket("b", "api")
    observe(rl, mastodon, headers(5, 4, T0 + 10.734521), 200)
    assert mastodon.reset_at == T0 + 10
    millis = {"X-RateLimit-Limit": "5", "X-RateLimit-Remaining": "4"}
    millis["X-RateLimit-Reset"] = iso(T0 + 10.5)[:-4] + "Z"
    observe(rl, gotosocial, millis, 200)
    assert gotosocial.reset_at == pytest.approx(T0 + 10.5)


def test_a_429_with_retry_after_blocks_for_that_long_only() -> None:
    rl, clock = limiter()
    bucket = rl.bucket("tok", "api")
    rl.reserve(bucket)
    observe(rl, bucket, {**headers(300, 0, T0 + 200), "Retry-After": "30"}, 429)
    rl.rate_limited(bucket, retry_after=30, fallback=1)
    delay, reason = rl.reserve(bucket)
    assert reason == "rate_limited"
    assert delay == pytest.approx(30)
    clock.now = T0 + 30
    assert rl.reserve(bucket) == (0.0, None)


def test_a_429_with_no_hint_at_all_backs_off() -> None:
    rl, clock = limiter()
    bucket = rl.bucket("", "api")
    rl.reserve(bucket)
    observe(rl, bucket, {}, 429)
    rl.rate_limited(bucket, retry_after=None, fallback=2.5)
    delay, reason = rl.reserve(bucket)
    assert reason == "rate_limited"
    assert delay == pytest.approx(2.5)
    clock.now = T0 + 2.6
    assert rl.reserve(bucket) == (0.0, None)


def test_a_429_without_retry_after_spends_the_window() -> None:
    rl, clock = limiter()
    bucket = rl.bucket("tok", "api")
    rl.reserve(bucket)
    observe(rl, bucket, headers(300, 120, T0 + 200), 429)
    rl.rate_limited(bucket, retry_after=None, fallback=1)
    clock.now = T0 + 199
    assert rl.reserve(bucket)[1] == "rate_limited"
    clock.now = T0 + 200.1
    assert rl.reserve(bucket) == (0.0, None)  # a fresh window


def test_wait_holds_back_once_the_budget_is_spent_until_the_reset() -> None:
    rl, clock = limiter("wait")
    bucket = rl.bucket("tok", "api")
    rl.reserve(bucket)
    observe(rl, bucket, headers(3, 2, T0 + 10), 200)
    assert rl.reserve(bucket) == (0.0, None)
    assert rl.reserve(bucket) == (0.0, None)
    delay, reason = rl.reserve(bucket)
    assert reason == "budget_spent"
    assert delay == pytest.approx(10.05)
    answered(bucket)
    clock.now = T0 + 10.1
    assert rl.reserve(bucket) == (0.0, None)  # a fresh window, assumed full
    assert bucket.remaining == 2


def test_reports_in_the_same_window_never_raise_the_estimate() -> None:
    rl, _ = limiter()
    bucket = rl.bucket("tok", "api")
    rl.reserve(bucket)
    observe(rl, bucket, headers(300, 200, T0 + 50), 200)
    for _ in range(10):
        rl.reserve(bucket)
    # a slow response counted before the ten above reports more than is really left
    observe(rl, bucket, headers(300, 199, T0 + 50.3), 200)
    assert bucket.remaining == 190
    # the next window's first report is taken as it is
    observe(rl, bucket, headers(300, 299, T0 + 350), 200)
    assert bucket.remaining == 299
    assert bucket.period == pytest.approx(300.0)


def test_a_429_empties_the_bucket() -> None:
    rl, _ = limiter()
    bucket = rl.bucket("tok", "api")
    rl.reserve(bucket)
    observe(rl, bucket, headers(300, 0, T0 + 20), 429)
    delay, reason = rl.reserve(bucket)
    assert reason == "budget_spent"
    assert delay == pytest.approx(20.05)


def test_pace_spreads_the_remaining_budget_over_the_window() -> None:
    rl, clock = limiter("pace")
    bucket = rl.bucket("tok", "paging")
    rl.reserve(bucket)
    observe(rl, bucket, headers(30, 10, T0 + 10), 200)
    slots = []
    for _ in range(10):
        delay, _ = rl.reserve(bucket)
        assert delay is not None
        slots.append(delay)
    assert slots[0] == 0.0
    gaps = [b - a for a, b in itertools.pairwise(slots)]
    assert all(g == pytest.approx(1.0) for g in gaps)
    assert slots[-1] < 10.0  # the whole budget is used before the reset
    delay, reason = rl.reserve(bucket)
    assert reason == "budget_spent"
    answered(bucket)
    clock.now = T0 + 10.1
    assert rl.reserve(bucket) == (0.0, None)  # a fresh window, assumed full
    assert bucket.remaining == 29


def test_pace_predicts_the_next_window_once_it_knows_the_window_length() -> None:
    rl, clock = limiter("pace")
    bucket = rl.bucket("tok", "api")
    rl.reserve(bucket)
    observe(rl, bucket, headers(4, 3, T0 + 10), 200)
    clock.now = T0 + 10.1
    rl.reserve(bucket)
    observe(rl, bucket, headers(4, 3, T0 + 20), 200)  # windows are 10 s long
    for _ in range(3):
        rl.reserve(bucket)
    answered(bucket)
    clock.now = T0 + 20.1
    first, reason = rl.reserve(bucket)
    second, _ = rl.reserve(bucket)
    assert first == 0.0
    assert reason == "pacing"
    assert second == pytest.approx((T0 + 30 - clock.now) / 4)  # four requests in 9.9 s


def test_raise_never_holds_anything_back() -> None:
    rl, _ = limiter("raise")
    bucket = rl.bucket("tok", "api")
    observe(rl, bucket, headers(3, 0, T0 + 10), 429)
    assert rl.reserve(bucket) == (0.0, None)


def test_a_skewed_server_clock_is_corrected_with_the_date_header() -> None:
    rl, clock = limiter()
    bucket = rl.bucket("tok", "api")
    rl.reserve(bucket)
    ahead = T0 + 3600  # the server's clock is an hour fast
    date = format_datetime(datetime.fromtimestamp(ahead, UTC), usegmt=True)
    observe(rl, bucket, headers(2, 0, ahead + 30, Date=date), 200)
    delay, _ = rl.reserve(bucket)
    assert delay == pytest.approx(30.05)
    assert server_skew({"Date": date}, clock.now) == pytest.approx(3600)
    assert server_skew({"Date": "garbage"}, clock.now) == 0.0
    small = format_datetime(datetime.fromtimestamp(T0 + 1, UTC), usegmt=True)
    assert server_skew({"Date": small}, clock.now) == 0.0


def test_epoch_second_resets_are_understood() -> None:
    rl, _ = limiter()
    bucket = rl.bucket("tok", "api")
    rl.reserve(bucket)
    observe(
        rl,
        bucket,
        {"X-RateLimit-Limit": "1", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1786000042"},
        200,
    )
    delay, _ = rl.reserve(bucket)
    assert delay == pytest.approx(1786000042 - T0 + 0.05)


@pytest.mark.parametrize(
    ("method", "url", "kind"),
    [
        ("GET", "https://m.example/api/v1/accounts/1/followers", "api"),
        ("GET", "https://m.example/api/v1/accounts/1/followers?max_id=5", "paging"),
        ("GET", "https://m.example/api/v1/timelines/home?since_id=5", "paging"),
        ("POST", "https://m.example/api/v1/apps", "registration"),
        ("GET", "https://m.example/api/v1/apps/verify_credentials", "api"),
        ("POST", "https://m.example/oauth/token", None),
        ("POST", "https://m.example/oauth/revoke", None),
    ],
)
def test_request_kinds(method: str, url: str, kind: str | None) -> None:
    assert request_kind(method, URL(url)) == kind


def test_retry_backoff_is_capped_and_jittered() -> None:
    retry = Retry(backoff=0.5, max_backoff=4.0)
    rng = random.Random(7)
    for n, cap in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (9, 4.0)]:
        delays = [retry.delay(n, rng) for _ in range(200)]
        assert all(cap * 0.5 <= d <= cap for d in delays)
        assert max(delays) - min(delays) > cap * 0.3  # actually jittered


@pytest.mark.parametrize("kwargs", [{"attempts": 0}, {"backoff": -1.0}, {"budget": -5.0}])
def test_retry_settings_are_checked(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must"):
        Retry(**kwargs)  # type: ignore[arg-type]


def test_a_429_whose_reset_is_already_past_still_backs_off() -> None:
    rl, _ = limiter()
    bucket = rl.bucket("tok", "api")
    rl.reserve(bucket)
    observe(rl, bucket, headers(300, 0, T0 - 5), 429)  # a stale or skewed reset
    rl.rate_limited(bucket, retry_after=None, fallback=2.0)
    delay, reason = rl.reserve(bucket)
    assert reason == "rate_limited"
    assert delay == pytest.approx(2.0)


def test_requests_still_on_their_way_count_against_the_next_window() -> None:
    rl, clock = limiter()
    bucket = rl.bucket("tok", "api")
    rl.reserve(bucket)
    observe(rl, bucket, headers(10, 9, T0 + 1), 200)
    for _ in range(3):
        rl.reserve(bucket)  # sent just before the reset, not answered yet
    clock.now = T0 + 1.1
    rl.reserve(bucket)
    # the server may count the three in the new window: 10 - 3, less the one just taken
    assert bucket.remaining == 6


# -- hostile headers (issue 8, point 7) --------------------------------------------------------

NOW = datetime.fromtimestamp(T0, UTC)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("0", 0.0),
        ("999999999", 999999999.0),
        ("9" * 5000, 1e10),  # int() would refuse it; still "far too long"
        (format_datetime(datetime.fromtimestamp(T0 + 90, UTC), usegmt=True), 90.0),
        (format_datetime(datetime.fromtimestamp(T0 - 90, UTC), usegmt=True), 0.0),
        ("Sun Nov  6 08:49:37 1994", 0.0),  # asctime, in the past
        ("-5", None),
        ("+5", None),
        ("2.5", None),
        ("nan", None),
        ("inf", None),
        ("-inf", None),
        ("1e309", None),
        ("0x10", None),
        ("٣", None),  # a digit, but not an ASCII one
        ("soon", None),
        ("", None),
    ],
)
def test_retry_after_is_delay_seconds_or_an_http_date_and_nothing_else(
    value: str, seconds: float | None
) -> None:
    assert parse_retry_after(value, NOW) == seconds


def test_an_http_date_retry_after_is_read_against_the_servers_date() -> None:
    ahead = T0 + 3600  # the server's clock is an hour fast
    headers = {
        "Date": format_datetime(datetime.fromtimestamp(ahead, UTC), usegmt=True),
        "Retry-After": format_datetime(datetime.fromtimestamp(ahead + 30, UTC), usegmt=True),
    }
    assert retry_after(headers, T0) == pytest.approx(30.0)
    far = retry_after({"Retry-After": "Fri, 01 Jan 2100 00:00:00 GMT"}, T0)
    assert far is not None
    assert far > 2e9  # seventy-odd years: for the Session to refuse, not to sleep
    assert retry_after({"Retry-After": "nan"}, T0) is None


@pytest.mark.parametrize(
    "headers",
    [
        {"X-RateLimit-Limit": "300", "X-RateLimit-Remaining": "-5"},
        {"X-RateLimit-Limit": "1_000", "X-RateLimit-Remaining": "5"},
        {"X-RateLimit-Limit": "300", "X-RateLimit-Remaining": "1e3"},
    ],
)
def test_rate_limit_numbers_are_plain_digits(headers: dict[str, str]) -> None:
    assert RateLimit.from_headers(headers) is None


@pytest.mark.parametrize(
    ("offset", "skew"),
    [
        (3 * 3600.0, 3 * 3600.0),  # a clock hours off (a wrong time zone): corrected
        (-20 * 3600.0, -20 * 3600.0),
        (-T0, 0.0),  # Date: 1970
        (2 * 86_400.0, 0.0),  # two days ahead: a broken header, not a clock
        (-(T0 - 86_400.0 * 365 * 10), 0.0),
    ],
)
def test_an_absurd_skew_is_ignored(offset: float, skew: float) -> None:
    date = format_datetime(datetime.fromtimestamp(T0 + offset, UTC), usegmt=True)
    assert server_skew({"Date": date}, T0) == pytest.approx(skew)


@pytest.mark.parametrize("told", [0.0, 0.2, None])
def test_a_429_holds_the_bucket_for_a_second_at_least(told: float | None) -> None:
    rl, _ = limiter()
    bucket = rl.bucket("", "api")
    rl.reserve(bucket)
    observe(rl, bucket, {}, 429)
    known = rl.rate_limited(bucket, retry_after=told, fallback=0.0)
    assert known is (told is not None)
    delay, reason = rl.reserve(bucket)
    assert reason == "rate_limited"
    assert delay == pytest.approx(1.0)


def test_pace_spreads_a_far_window_over_max_wait_only() -> None:
    clock = Clock()
    rl = RateLimiter("pace", clock, max_wait=960.0)
    bucket = rl.bucket("tok", "paging")
    rl.reserve(bucket)
    observe(rl, bucket, headers(300, 299, T0 + 89 * 86_400), 200)
    slots = []
    for _ in range(299):
        delay, reason = rl.reserve(bucket)
        assert delay is not None
        slots.append(delay)
    assert max(slots) <= 960.0
    assert slots[1] == pytest.approx(960.0 / 299, rel=0.01)  # not 89 days / 299
    delay, reason = rl.reserve(bucket)
    assert reason == "budget_spent"  # spent until 2026 + 89 days: for the Session to refuse
    assert delay is not None
    assert delay > 960.0


def test_one_wait_is_news_once_however_many_tasks_meet_it() -> None:
    rl, clock = limiter()
    bucket = rl.bucket("tok", "api")
    rl.reserve(bucket)
    observe(rl, bucket, headers(3, 0, T0 + 60), 200)
    delays = [rl.reserve(bucket)[0] for _ in range(10)]
    assert [rl.first_to_wait(bucket, d) for d in delays if d is not None] == [True] + [False] * 9
    clock.now = T0 + 60.1
    answered(bucket)
    observe(rl, bucket, headers(3, 0, T0 + 120), 200)
    delay, _ = rl.reserve(bucket)
    assert delay is not None
    assert rl.first_to_wait(bucket, delay)  # the next window's wait is news again
