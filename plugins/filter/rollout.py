# -*- coding: utf-8 -*-
# Copyright (c) parker.kernel contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Rollout filters for playbooks/site.yml's canaries; documented in rollout_*.yml, the work in _rollout.py."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.parker.kernel.plugins.module_utils import _rollout


def rollout_canaries(classes):
    """[[host, class], ...] -> the first host of each class."""
    return _rollout.canaries(classes)


def rollout_halt(record, records, max_fail_percentage=0):
    """This host's record, every record so far, the failure limit -> why it must not start, or ''."""
    return _rollout.halt_reason(record, [r for r in records if r], max_fail_percentage)


def rollout_report(records, hosts):
    """Every host's record, the rollout's hosts -> done, reverted, failed, untouched, reasons and lines."""
    return _rollout.report([r for r in records if r], hosts)


class FilterModule(object):
    def filters(self):
        return {'rollout_canaries': rollout_canaries, 'rollout_halt': rollout_halt, 'rollout_report': rollout_report}
