# -*- coding: utf-8 -*-
# Copyright (c) parker.kernel contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Planner filters: a host's partitions from intent and facts, hardware classes, and the plan's pictures.

Each filter is documented in its sidecar file (plan_host.yml, hardware_fingerprint.yml, ...) next to this one.
They run on the controller and read only their arguments (facts from the fact cache are enough); the work
is in plugins/module_utils/_planner.py, _fingerprint.py and _picture.py.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible.errors import AnsibleFilterError
from ansible_collections.parker.kernel.plugins.module_utils import _drift, _fingerprint, _picture, _planner
from ansible_collections.parker.kernel.plugins.module_utils._intent import IntentError


def _wrap(function):
    def run(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except IntentError as exc:
            raise AnsibleFilterError('parker.kernel.%s: %s' % (function.__name__, exc))
        except (KeyError, TypeError, ValueError) as exc:
            raise AnsibleFilterError('parker.kernel.%s: unexpected input (%s: %s); it takes '
                                     'ansible_facts.parker_kernel from parker.kernel.partition_facts'
                                     % (function.__name__, type(exc).__name__, exc))
    run.__name__ = function.__name__
    run.__doc__ = function.__doc__
    return run


def plan_host(facts, intent, host_identity=None):
    """ansible_facts.parker_kernel, intent, {name, index, networks} -> the host's plan."""
    return _planner.plan_host(facts, intent, host_identity)


def hardware_fingerprint(facts):
    """ansible_facts.parker_kernel -> {id, summary, shape}."""
    return _fingerprint.hardware_fingerprint(facts)


def hardware_classes(fingerprints):
    """{host: fingerprint or plan} -> {class id: {summary, hosts}}."""
    return _fingerprint.hardware_classes(fingerprints)


def hardware_outliers(fingerprints, groups=None):
    """{host: fingerprint or plan}, {group: [hosts]} -> hosts whose hardware differs from most of their group."""
    return _fingerprint.outliers(fingerprints, groups)


def plan_svg(plan, facts):
    """A plan and the facts it was made from -> SVG text."""
    return _picture.host_svg(facts, plan)


def class_svg(plan, facts, hosts=None, refused=0):
    """A representative host's plan and facts, the class's hosts -> SVG text."""
    return _picture.class_svg(facts, plan, hosts or (), refused)


def plan_index_html(plans, classes=None, outliers=None, host_path='hosts/{}.svg', class_path='classes/{}.svg',
                    title='parker.kernel plans', pictures=None):
    """{host: plan} -> the fleet page's HTML text."""
    return _picture.fleet_index(plans, classes, outliers or (), host_path, class_path, title, pictures)


def plan_changes(previous, current=None):
    """The host's previous plan (or nothing) and its new one, or the two as a pair -> what changed, as sentences."""
    if current is None and isinstance(previous, (list, tuple)) and len(previous) == 2:
        previous, current = previous
    return _planner.plan_changes(previous, current)


def hardware_summary(facts):
    """ansible_facts.parker_kernel -> what parker.kernel.host_partitions compares to refuse changed hardware."""
    return _drift.hardware_summary(facts['cpus'], facts['memory'], facts['pci'])


class FilterModule(object):

    def filters(self):
        return dict((f.__name__, _wrap(f)) for f in (
            plan_host, hardware_fingerprint, hardware_classes, hardware_outliers, plan_svg, class_svg,
            plan_index_html, plan_changes, hardware_summary))
