# -*- coding: utf-8 -*-
# Copyright (c) parker.kernel contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Partition filters: conflicts between one host's partitions, and the fleet summary of verify.yml."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.parker.kernel.plugins.module_utils import _partition_plan


def partition_conflicts(partitions):
    """[{name, cpus, devices}] as parker.kernel.partition reports them -> list of problems."""
    return _partition_plan.conflicts(partitions or [])


def verify_summary(verdicts, hosts=()):
    """verify.yml's per-host verdicts ({host, status, ...}) -> {hosts: {host: status}, counts: {status: n},
    not_in_plan: [hosts]}; a host of ``hosts`` without a verdict is 'unreachable'."""
    statuses = dict((v['host'], v['status']) for v in verdicts or [])
    for host in hosts or []:
        statuses.setdefault(host, 'unreachable')
    counts = {}
    for status in statuses.values():
        counts[status] = counts.get(status, 0) + 1
    return {'hosts': dict(sorted(statuses.items())), 'counts': dict(sorted(counts.items())),
            'not_in_plan': sorted(h for h, s in statuses.items() if s != 'in plan')}


class FilterModule(object):

    def filters(self):
        return {'partition_conflicts': partition_conflicts, 'verify_summary': verify_summary}
