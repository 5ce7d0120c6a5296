# -*- coding: utf-8 -*-
# Copyright (c) parker.kernel contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from ansible_collections.parker.kernel.plugins.module_utils import _common


class Failed(Exception):
    pass


class FakeModule:
    def fail_json(self, **result):
        raise Failed(result)


def test_a_python_older_than_the_floor_is_refused_naming_it():
    with pytest.raises(Failed) as failed:
        _common.require_target_python(FakeModule(), (2, 7, 18))
    result = failed.value.args[0]
    assert result['changed'] is False and result['writes'] == 0
    assert 'need Python 3.6 or later' in result['msg'] and 'Python 2.7.18' in result['msg']
    with pytest.raises(Failed):
        _common.require_target_python(FakeModule(), (3, 5, 10))


def test_the_floor_and_newer_pass():
    for version in ((3, 6, 0), (3, 13, 1)):
        assert _common.require_target_python(FakeModule(), version) is None
    assert _common.require_target_python(FakeModule()) is None   # this interpreter
