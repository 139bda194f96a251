"""Limits and Timeouts carry settings: their defaults are the declared ones, a Config fills them."""

from __future__ import annotations

import typing
from dataclasses import fields

import pytest

from corral.config.settings import BY_NAME, Config, carried, carried_settings
from corral.http.limits import Limits
from corral.server.context import Timeouts


@pytest.mark.parametrize("cls", [Limits, Timeouts])
def test_every_field_carries_a_setting_of_its_type_with_its_default(cls: type) -> None:
    hints = typing.get_type_hints(cls)
    config_hints = typing.get_type_hints(Config)
    for name, setting in carried_settings(cls).items():
        assert setting in BY_NAME, f"{cls.__name__}.{name} carries no setting"
        assert hints[name] == config_hints[setting]
    assert {f.name: f.default for f in fields(cls)} == {
        name: BY_NAME[setting].default for name, setting in carried_settings(cls).items()
    }


def test_limits_are_filled_from_the_config() -> None:
    config = Config(max_request_line=1, max_header_size=2, max_headers=3, max_body_size=4, body_buffer_size=5)
    assert carried(Limits, config) == Limits(1, 2, 3, 4, 5)
    assert carried(Limits, Config()) == Limits()


def test_timeouts_are_filled_from_the_config() -> None:
    config = Config(keepalive_timeout=1.0, header_timeout=2.0, body_timeout=3.0, send_timeout=4.0)
    assert carried(Timeouts, config) == Timeouts(keepalive=1.0, header=2.0, body=3.0, send=4.0)
    assert Timeouts().header == 10.0 == Config().header_timeout
