# -*- coding: utf-8 -*-
# Copyright (c) parker.kernel contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# This module util is PRIVATE to the parker.kernel collection.
# It can have breaking changes at any time.

"""A host's CPUs as whole cores in canonical order, from partition_facts (pure, controller side).

The canonical order is structural: node, then die, then last-level cache domain, then core, each level
ranked by its lowest CPU number. Two hosts of one model have the same structure even when firmware
numbers their CPUs differently, so "the third core of node 1's second cache domain" means the same
place on both; the planner works on these positions and each host maps them back to its own CPU
numbers. Built once per distinct CPU numbering (``cpu_topology`` caches by the facts' raw topology
fields), because a fleet has few of them.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import re
from operator import itemgetter

from ansible_collections.parker.kernel.plugins.module_utils._cpulist import format_cpulist

_CPU_FIELDS = itemgetter('id', 'node', 'package', 'die', 'core_cpus', 'llc')
_FIRST = re.compile(r'\s*(\d+)')
_CACHE = {}
_CACHE_LIMIT = 256
_COUNTER = [0]


class Topology(object):
    """Cores in canonical order. Per core index: ``cores[i]`` (its CPU numbers, ascending), ``core_node``,
    ``core_package``, ``core_group`` (index of its (node, die, LLC) group), ``core_die`` (index of its
    (node, die) group); ``groups`` are (node, die index, first core, last core + 1) ranges; ``node_cores``
    maps a node to its core indices in order; ``boot_core`` holds CPU 0 (or the lowest CPU); ``missing`` lists
    CPUs the facts give no topology for; ``rank`` orders cores by their lowest CPU number."""

    __slots__ = ('cores', 'core_node', 'core_package', 'core_group', 'core_die', 'groups', 'group_llc',
                 'node_cores', 'nodes', 'packages', 'package_nodes', 'boot_core', 'missing', 'rank', 'ident',
                 'shape', 'cpu_count', 'die_shown', 'llc_shown')


def _raw_key(cpu_list):
    return tuple(map(_CPU_FIELDS, cpu_list))


def _build(raw, ident):
    topo = Topology()
    by_core, missing = {}, []
    for row in raw:
        key = row[4]
        if key is None:
            missing.append(row[0])
            key = ('cpu', row[0])
        rows = by_core.get(key)
        if rows is None:
            by_core[key] = [row]
        else:
            rows.append(row)
    # One record per core, from its lowest CPU: (first CPU, node, package, die, llc, CPUs).
    records, llc_first = [], {}
    for rows in by_core.values():
        if len(rows) > 1:
            rows.sort(key=itemgetter(0))
        first = rows[0]
        # An LLC domain is known by its lowest CPU: the kernel drops offline CPUs from its siblings' lists, so
        # the text differs between CPUs of one domain once some are offline, but its first CPU (CPU 0's domain,
        # or any domain with an online first CPU) does not.
        llc = first[5]
        if llc is not None:
            found = llc_first.get(llc)
            if found is None:
                digits = _FIRST.match(llc)
                found = llc_first[llc] = int(digits.group(0)) if digits else llc
            llc = found
        records.append((first[0], first[1], first[2], first[3], llc, tuple(r[0] for r in rows), first[5]))
    records.sort(key=itemgetter(0))
    # Rank dies within their node and LLC domains within their die by lowest CPU (records are in CPU order).
    die_rank, llc_rank, dies_in, llcs_in = {}, {}, {}, {}
    for _first, node, package, die, llc, _cpus, _text in records:
        die_key = (node, package, die)
        if die_key not in die_rank:
            die_rank[die_key] = dies_in.get(node, 0)
            dies_in[node] = die_rank[die_key] + 1
        llc_key = (node, package, die, llc)
        if llc_key not in llc_rank:
            llc_rank[llc_key] = llcs_in.get(die_key, 0)
            llcs_in[die_key] = llc_rank[llc_key] + 1
    order = sorted(records, key=lambda r: (r[1] is None, r[1] or 0, die_rank[(r[1], r[2], r[3])],
                                           llc_rank[(r[1], r[2], r[3], r[4])], r[0]))
    topo.cores = [r[5] for r in order]
    topo.core_node = [r[1] for r in order]
    topo.core_package = [r[2] for r in order]
    topo.core_group, topo.core_die, topo.groups, topo.group_llc = [], [], [], []
    groups, dies = topo.groups, {}
    previous = None
    for index, r in enumerate(order):
        key = (r[1], r[2], r[3], r[4])
        if key != previous:
            groups.append([r[1], die_rank[key[:3]], index, index + 1])
            topo.group_llc.append(r[6])
            previous = key
        else:
            groups[-1][3] = index + 1
        topo.core_group.append(len(groups) - 1)
        topo.core_die.append(dies.setdefault(key[:3], len(dies)))
    topo.groups = [tuple(g) for g in groups]
    topo.node_cores = {}
    for index, node in enumerate(topo.core_node):
        topo.node_cores.setdefault(node, []).append(index)
    topo.nodes = sorted(n for n in topo.node_cores if n is not None)
    topo.packages = sorted(set(p for p in topo.core_package if p is not None))
    topo.package_nodes = {}
    for node, package in zip(topo.core_node, topo.core_package):
        nodes = topo.package_nodes.setdefault(package, [])
        if node not in nodes:
            nodes.append(node)
    lowest = [r[0] for r in order]
    topo.boot_core = lowest.index(min(lowest)) if lowest else None
    topo.rank = [0] * len(lowest)
    for position, index in enumerate(sorted(range(len(lowest)), key=lowest.__getitem__)):
        topo.rank[index] = position
    topo.missing = sorted(missing)
    topo.ident = ident
    topo.cpu_count = len(raw)
    topo.die_shown = len(set((r[2], r[3]) for r in order)) > len(set(r[2] for r in order))
    topo.llc_shown = any(llc is not None for llc in topo.group_llc)
    topo.shape = _shape(topo)
    return topo


def _shape(topo):
    """The numbering-free structure: per node, its dies, each die's LLC domains as (cores, threads per core)."""
    nodes = []
    for node in topo.nodes + ([None] if None in topo.node_cores else []):
        dies = []
        current_die, die_groups = None, []
        for group_index, group in enumerate(topo.groups):
            if group[0] != node:
                continue
            if group[1] != current_die:
                if die_groups:
                    dies.append(tuple(die_groups))
                current_die, die_groups = group[1], []
            threads = tuple(sorted(set(len(topo.cores[i]) for i in range(group[2], group[3]))))
            die_groups.append((group[3] - group[2], threads))
        if die_groups:
            dies.append(tuple(die_groups))
        package = topo.core_package[topo.node_cores[node][0]]
        package_rank = topo.packages.index(package) if package in topo.packages else None
        nodes.append((node, package_rank, tuple(dies)))
    return tuple(nodes)


def cpu_topology(cpus_facts):
    """The Topology of ``ansible_facts.parker_kernel.cpus``, cached by its raw topology fields."""
    raw = _raw_key(cpus_facts['list'])
    topo = _CACHE.get(raw)
    if topo is None:
        if len(_CACHE) >= _CACHE_LIMIT:
            _CACHE.clear()
        _COUNTER[0] += 1
        topo = _build(raw, _COUNTER[0])
        _CACHE[raw] = topo
    return topo


def core_cpus(topo, indices, smt='whole'):
    """CPU numbers of cores (all threads, or the first thread of each with smt=single), ascending."""
    cpus = []
    for index in indices:
        threads = topo.cores[index]
        cpus.extend(threads if smt == 'whole' else threads[:1])
    cpus.sort()
    return cpus


def cores_cpulist(topo, indices, smt='whole'):
    return format_cpulist(core_cpus(topo, indices, smt))
