# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
"""Every name `trl_mos` exports resolves, and is the object of the module that defines it."""

import importlib

import pytest

import trl_mos


@pytest.mark.parametrize("name", sorted(trl_mos._LAZY_ATTRIBUTES))
def test_every_public_name_resolves_to_its_module(name):
    module = importlib.import_module(trl_mos._LAZY_ATTRIBUTES[name])
    assert getattr(trl_mos, name) is getattr(module, name)


def test_unknown_names_raise_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'not_a_name'"):
        trl_mos.not_a_name  # noqa: B018
