# -*- coding: utf-8 -*-
# Copyright (c) parker.kernel contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Partition filters: conflicts between one host's partitions, before anything is written."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.parker.kernel.plugins.module_utils import _partition_plan


def partition_conflicts(partitions):
    """[{name, cpus, devices}] as parker.kernel.partition reports them -> list of problems."""
    return _partition_plan.conflicts(partitions or [])


class FilterModule(object):

    def filters(self):
        return {'partition_conflicts': partition_conflicts}
