"""The polling helper itself."""

from __future__ import annotations

import itertools

import pytest

from tests.polling import eventually

pytestmark = pytest.mark.unit


def test_returns_the_first_truthy_value() -> None:
    counter = itertools.count()
    assert eventually(lambda: next(counter) >= 3 and "done", 5, "three calls", every=0) == "done"


def test_fails_naming_what_and_the_last_value() -> None:
    with pytest.raises(pytest.fail.Exception, match=r"waited 0s for the job \(last"):
        eventually(lambda: None, 0, lambda: "the job (last message)", every=0)
