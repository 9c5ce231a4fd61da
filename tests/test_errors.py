"""The one table of advice: each error's message says what happened, its hint what to do, and no advice twice."""

from __future__ import annotations

import pickle

import pytest

from sora_nb import errors
from sora_nb.errors import ADVICE, advice


def test_the_hint_comes_from_the_one_table_and_str_is_message_then_hint() -> None:
    error = errors.RateLimitError("too many requests", retry_after=2.0)
    assert error.message == "too many requests" and error.hint == "The service is busy: wait a moment, then retry."
    assert str(error) == "too many requests. The service is busy: wait a moment, then retry."
    ended = errors.AuthenticationError("Incorrect API key provided.")
    assert str(ended) == "Incorrect API key provided. " + ended.hint and "SORA_NB_API_KEY" in ended.hint
    assert errors.DownloadError("the video arrived incomplete").hint == ""  # no row: the message is all
    assert str(errors.DownloadError("the video arrived incomplete")) == "the video arrived incomplete"


def test_moderation_advice_depends_on_the_code_and_is_not_repeated_after_a_server_that_gives_it() -> None:
    hosted = errors.GenerationFailedError(
        "Your request was blocked by our moderation system.", code="moderation_blocked"
    )
    assert hosted.hint.startswith("Rephrase the prompt") and str(hosted).endswith(hosted.hint)
    local = errors.GenerationFailedError(
        "The prompt was blocked by the local server's moderation list (word: 'x'). Rephrase the prompt; ...",
        code="moderation_blocked",
    )
    assert local.hint == "" and str(local) == local.message  # the server said it already: once is enough
    assert errors.GenerationFailedError("it broke", code="internal_error").hint == ""
    waited = errors.DeadlineExceededError("'v' was still 'queued' after 60 s; it is not lost: sora_nb.attach('v')")
    assert waited.hint == ""  # sora_nb's own message already says what to do


@pytest.mark.parametrize(("kind", "code", "hint"), ADVICE)
def test_every_row_is_one_sentence_that_fits_its_own_kind(
    kind: type[errors.SoraError], code: str | None, hint: str
) -> None:
    error = kind("something happened", code=code)
    assert advice(error) == hint == error.hint and hint.endswith(".") and "\n" not in hint and len(hint) < 120


def test_an_error_keeps_message_hint_and_text_across_pickling() -> None:
    error = errors.ConnectError("cannot reach 127.0.0.1:1 (ConnectError)")
    again = pickle.loads(pickle.dumps(error))
    assert (type(again), again.message, again.hint, str(again)) == (type(error), error.message, error.hint, str(error))
