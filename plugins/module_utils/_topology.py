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

from operator import itemgetter

from ansible_collections.parker.kernel.plugins.module_utils._cpulist import format_cpulist

_CPU_FIELDS = itemgetter('id', 'node', 'package', 'die', 'core_cpus', 'llc')
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
    by_core = {}
    missing = []
    for cpu, node, package, die, core_cpus, llc in raw:
        if core_cpus is None:
            missing.append(cpu)
            key = ('cpu', cpu)
        else:
            key = core_cpus
        entry = by_core.get(key)
        if entry is None:
            by_core[key] = [cpu, node, package, die, llc, [cpu]]
        else:
            entry[5].append(cpu)
            if cpu < entry[0]:
                entry[0:5] = [cpu, node, package, die, llc]
    cores = sorted(by_core.values(), key=itemgetter(0))
    # Rank dies and LLC domains within their node by lowest CPU: cores are already in CPU order.
    die_rank, llc_rank = {}, {}
    for first, node, package, die, llc, _cpus in cores:
        die_key = (node, package, die)
        if die_key not in die_rank:
            die_rank[die_key] = sum(1 for k in die_rank if k[0] == node)
        llc_key = (node, package, die, llc)
        if llc_key not in llc_rank:
            llc_rank[llc_key] = sum(1 for k in llc_rank if k[:3] == die_key)
    node_sort = dict((n, (1, 0) if n is None else (0, n)) for n in set(c[1] for c in cores))
    order = sorted(cores, key=lambda c: (node_sort[c[1]], die_rank[(c[1], c[2], c[3])],
                                         llc_rank[(c[1], c[2], c[3], c[4])], c[0]))
    topo.cores = [tuple(sorted(c[5])) for c in order]
    topo.core_node = [c[1] for c in order]
    topo.core_package = [c[2] for c in order]
    topo.core_group, topo.core_die, topo.groups, topo.group_llc = [], [], [], []
    previous = None
    for index, c in enumerate(order):
        key = (c[1], c[2], c[3], c[4])
        if key != previous:
            topo.groups.append([c[1], die_rank[(c[1], c[2], c[3])], index, index + 1])
            topo.group_llc.append(c[4])
            previous = key
        else:
            topo.groups[-1][3] = index + 1
        topo.core_group.append(len(topo.groups) - 1)
    dies = {}
    for index, c in enumerate(order):
        topo.core_die.append(dies.setdefault((c[1], c[2], c[3]), len(dies)))
    topo.groups = [tuple(g) for g in topo.groups]
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
    lowest = [c[0] for c in topo.cores]
    topo.boot_core = lowest.index(min(lowest)) if lowest else None
    ranked = sorted(range(len(lowest)), key=lowest.__getitem__)
    topo.rank = [0] * len(lowest)
    for position, index in enumerate(ranked):
        topo.rank[index] = position
    topo.missing = sorted(missing)
    topo.ident = ident
    topo.cpu_count = len(raw)
    topo.die_shown = len(set((c[2], c[3]) for c in order)) > len(set(c[2] for c in order))
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
