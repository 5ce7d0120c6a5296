# -*- coding: utf-8 -*-
# Copyright (c) parker.kernel contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# This module util is PRIVATE to the parker.kernel collection.
# It can have breaking changes at any time.

"""The partition planner: an intent and one host's facts give that host's concrete partitions (pure, no I/O).

``plan_host(facts, intent, identity)`` returns the partitions in the ``parker_partitions`` format the
partitions role applies (name, cpus as a cpulist, memory as a size, devices as PCI addresses, network,
and the intent's per-partition kernel settings), the host's hardware fingerprint, and, when the intent
does not fit the host, ``refused`` with every reason. It reads nothing but its arguments, so it runs from
Ansible's fact cache, one host at a time (AWX job slicing), and a host's plan never depends on another
host's.

How: the host's CPUs become whole cores in a canonical structural order (_topology.py); housekeeping
cores stay with the Boot Kernel (CPU 0's core always); then each partition gets its cores (node-pinned
ones first, then packed ones largest first, then spread ones, then "rest"), preferring one die and one
last-level cache domain (best fit), memory from the node of its first CPU in whole allocation units,
and devices as whole IOMMU groups, nearest node first. The decisions read only a position-based view
of the host (the solver's key), so hosts with the same hardware, numbering and free resources share one
solution (cached); each host then maps it to its own PCI addresses and adds its own identity (address,
host name). Ties are broken by position, never by iteration order, so a plan is byte-identical run to
run. docs/planner.md describes the intent and the output.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import copy
from fnmatch import fnmatchcase
from operator import itemgetter

from ansible_collections.parker.kernel.plugins.module_utils._cpulist import parse_cpus, format_cpulist, CpulistError
from ansible_collections.parker.kernel.plugins.module_utils._cmdline import format_size
from ansible_collections.parker.kernel.plugins.module_utils._intent import (
    validated, validate_identity, IntentError, format_share)
from ansible_collections.parker.kernel.plugins.module_utils._ownership import device_label
from ansible_collections.parker.kernel.plugins.module_utils import _fingerprint, _topology

MAX_THREADS = 512        # Parker's limit per partition (the partition module's MAX_CPUS)
MAX_DEVICES = 256
FAR = 1 << 20            # rank of a device whose node the facts do not give
_SOLUTIONS = {}
_SOLUTION_LIMIT = 4096
_DEV_FIELDS = itemgetter('address', 'numa_node', 'class', 'vendor', 'device', 'driver', 'net', 'block',
                         'iommu_group', 'ssh', 'default_route', 'root_fs', 'in_use', 'claimed_by')
_ROW_ORDER = itemgetter(0, 1, 2, 3, 4)


def clear_caches():
    """Forget every cached solution, topology, fingerprint and intent (tests and benchmarks)."""
    from ansible_collections.parker.kernel.plugins.module_utils import _intent
    _SOLUTIONS.clear()
    _topology._CACHE.clear()
    _fingerprint._CACHE.clear()
    _intent._CACHE.clear()


class _Host(object):
    """What the solver may read about one host (``key`` covers all of it) and, for messages, its names."""

    __slots__ = ('topo', 'unit', 'unavailable', 'devices', 'groups', 'mem_units', 'has_memory', 'mem_detail',
                 'distances', 'node_ids', 'key', 'fingerprint', 'addresses', 'dev_facts', 'group_names',
                 'problems', 'holders')


def _host_devices(host, pci_devices, names, only_node=None):
    """The devices a partition could get, in canonical order (node, class, vendor, device, address), each as
    (node, class, vendor, device, driver, names, group position, status); status is ok, boot (the Boot
    Kernel uses it), own:NAME (a partition of this intent holds it), foreign or nodriver."""
    rows = []
    for dev in pci_devices:
        (address, node, klass, vendor, device, driver, net, block, group,
         ssh, route, root, in_use, claimed) = _DEV_FIELDS(dev)
        klass = (klass or '').lower()
        if klass[:2] == '0x':
            klass = klass[2:]
        if klass[:2] == '06':
            continue    # bridges are the platform's, never a partition's
        if not (isinstance(node, int) and not isinstance(node, bool) and node >= 0):
            node = only_node    # a one-node host's devices often say -1
        if ssh or route or root or in_use:
            status = 'boot'
        elif claimed:
            status = ('own:' + claimed) if claimed in names else 'foreign'
        elif not driver:
            status = 'nodriver'
        else:
            status = 'ok'
        rows.append((FAR if node is None else node, klass, vendor or '', device or '', address, node, driver,
                     tuple(net or ()) + tuple(block or ()), group, status, dev))
    rows.sort(key=_ROW_ORDER)
    group_pos, devices, groups, group_names = {}, [], {}, {}
    for position, row in enumerate(rows):
        group = row[8]
        gkey = ('group', group) if group is not None else ('alone', row[4])
        gpos = group_pos.get(gkey)
        if gpos is None:
            gpos = group_pos[gkey] = len(group_pos)
            group_names[gpos] = group
            groups[gpos] = [position]
        else:
            groups[gpos].append(position)
        devices.append((row[5], row[1], row[2], row[3], row[6], row[7], gpos, row[9]))
    host.devices = tuple(devices)
    host.addresses = [row[4] for row in rows]
    host.dev_facts = [row[10] for row in rows]
    host.groups = dict((g, tuple(members)) for g, members in groups.items())
    host.group_names = group_names


def _held(facts, topo, names):
    """Parker partitions the facts show: CPUs of ones the intent does not name are not the planner's;
    memory of ones it names is free again for them. Returns (unavailable {core: holder}, own memory by node,
    foreign sizes by node, problems)."""
    held = ((facts.get('parker') or {}).get('partitions')) or []
    unavailable, own_memory, foreign = {}, {}, {}
    if not held:
        return unavailable, own_memory, foreign
    cpu_core = {}
    for index, cpus in enumerate(topo.cores):
        for cpu in cpus:
            cpu_core[cpu] = index
    for part in sorted(held, key=lambda p: str(p.get('name'))):
        try:
            cpus = parse_cpus(part.get('cpus') or '')
        except (CpulistError, ValueError):
            cpus = set()
        size = (part.get('memory') or {}).get('size') or 0
        first = min(cpus) if cpus else None
        node = topo.core_node[cpu_core[first]] if first in cpu_core else None
        if part.get('name') in names:
            own_memory[node] = own_memory.get(node, 0) + size
        else:
            for cpu in cpus:
                if cpu in cpu_core:
                    unavailable.setdefault(cpu_core[cpu], part.get('name'))
            foreign.setdefault(node, []).append(size)
    return unavailable, own_memory, foreign


def _memory(host, facts, intent, own_memory, foreign):
    unit = intent['memory_unit']
    if unit == 'block':
        unit = (facts.get('memory') or {}).get('block_size')
        if not unit:
            host.problems.append('memory_unit: block, but the facts give no memory block size (gather the memory '
                                 'subset)')
            unit = 1 << 30
    host.unit = unit
    reserve = intent['housekeeping']['memory']
    pool = intent['memory_pool']
    areas = {}
    cma = (facts.get('parker') or {}).get('cma')
    if pool == 'cma':
        if not cma:
            host.problems.append('memory_pool: cma, but the facts show no Parker CMA areas (no parker_cma= on the '
                                 'Boot Kernel line, or the parker subset was not gathered)')
        for area in (cma or {}).get('areas') or []:
            areas[area.get('node')] = area.get('size') or 0
    units, has_memory, detail = {}, {}, {}
    for node in (facts.get('numa') or {}).get('nodes') or []:
        nid = node['id']
        total = node.get('mem_total') or 0
        if pool == 'free':
            capacity = (node.get('mem_free') or 0) + own_memory.get(nid, 0)
            label = 'free'
        else:
            capacity = areas.get(nid, 0) - sum(-(-size // unit) * unit for size in foreign.get(nid, []))
            label = 'in its Parker CMA area' if nid in areas else None
        capacity -= reserve
        units[nid] = max(0, capacity // unit)
        has_memory[nid] = total > 0
        detail[nid] = (label, max(0, capacity))
    host.mem_units = units
    host.has_memory = has_memory
    host.mem_detail = detail


def _distances(facts):
    nodes = sorted(n['id'] for n in (facts.get('numa') or {}).get('nodes') or [])
    table = {}
    for node in (facts.get('numa') or {}).get('nodes') or []:
        row = node.get('distances') or []
        if len(row) == len(nodes):
            table[node['id']] = tuple(row)
    return nodes, table


def _build_host(facts, intent):
    host = _Host()
    host.problems = []
    topo = _topology.cpu_topology(facts['cpus'])
    host.topo = topo
    host.fingerprint = _fingerprint.fingerprint_parts(facts, topo)[1]
    unavailable, own_memory, foreign = _held(facts, topo, intent['names'])
    host.unavailable = frozenset(unavailable)
    host.holders = unavailable
    _host_devices(host, (facts.get('pci') or {}).get('devices') or [], intent['names'],
                  topo.nodes[0] if len(topo.nodes) == 1 else None)
    if 'pci' not in facts and any(p['devices'] for p in intent['partitions']):
        host.problems.append('the intent asks for devices but the facts have no pci subset (gather it)')
    _memory(host, facts, intent, own_memory, foreign)
    host.node_ids, host.distances = _distances(facts)
    host.key = (intent['key'], topo.ident, tuple(sorted(host.unavailable)), host.devices, host.unit,
                tuple(sorted((n, host.mem_units[n], host.has_memory[n]) for n in host.mem_units)),
                tuple(host.node_ids), tuple(sorted(host.distances.items())))
    return host


# -- the solver: reads only what host.key covers, except to word a refusal --------------------------------

def _housekeeping(topo, spec, unavailable):
    keep = set()
    if topo.boot_core is not None:
        keep.add(topo.boot_core)
    count = spec['cores']
    if spec['per'] == 'node':
        scopes = [topo.node_cores[n] for n in topo.nodes]
    else:
        scopes = []
        for package in topo.packages:
            cores = []
            for node in sorted(topo.package_nodes[package], key=lambda n: (n is None, n)):
                cores.extend(i for i in topo.node_cores[node] if topo.core_package[i] == package)
            scopes.append(cores)
    for cores in scopes:
        available = [i for i in cores if i not in unavailable]
        keep.update(available[:count])
    return keep


def _pick(topo, cores, want, levels):
    """``want`` of ``cores`` (canonical order), inside as few groups of each level as it can: a group that
    holds them all (the smallest such, then the first), else whole groups largest first."""
    if want >= len(cores) or not levels:
        return list(cores[:want])
    level = levels[0]
    groups, index = [], {}
    for core in cores:
        key = level[core]
        if key not in index:
            index[key] = len(groups)
            groups.append([])
        groups[index[key]].append(core)
    fits = [g for g in groups if len(g) >= want]
    if fits:
        return _pick(topo, min(fits, key=len), want, levels[1:])
    chosen = []
    remaining = sorted(groups, key=lambda g: -len(g))
    while want > 0 and remaining:
        fits = [g for g in remaining if len(g) >= want]
        if fits:
            chosen.extend(_pick(topo, min(fits, key=len), want, levels[1:]))
            break
        group = remaining.pop(0)
        chosen.extend(group)
        want -= len(group)
    return sorted(chosen)   # core indices are canonical positions


class _State(object):
    def __init__(self, host, intent):
        topo = host.topo
        self.host = host
        self.intent = intent
        self.keep = _housekeeping(topo, intent['housekeeping'], host.unavailable)
        self.free = {}
        for node in topo.nodes:
            self.free[node] = [i for i in topo.node_cores[node] if i not in self.keep and i not in host.unavailable]
        self.base_free = dict((n, len(v)) for n, v in self.free.items())
        self.host_base = sum(self.base_free.values())
        self.mem_left = dict(host.mem_units)
        self.given_cores = dict((n, []) for n in topo.nodes)    # node -> [(partition, cores)]
        self.given_memory = dict((n, []) for n in host.mem_units)
        self.taken = {}                                          # device position -> partition
        self.reasons = []
        self.warnings = []
        self.parts = {}


def _want(part, state):
    kind, value = part['cpus']
    if kind == 'cores':
        return value
    if kind == 'share':
        base = state.base_free.get(part['node'], 0) if part['node'] is not None else state.host_base
        return int(value * base)
    return None


def _phase(part):
    if part['cpus'][0] == 'rest':
        return 3 if part['node'] is not None else 4
    if part['node'] is not None:
        return 0
    return 2 if part['placement'] == 'spread' else 1


def _mem_need(part, node, state):
    kind, value = part['memory']
    unit = state.host.unit
    if kind == 'size':
        return -(-value // unit)
    return int(value * state.host.mem_units.get(node, 0))


def _size(units, unit):
    return format_size(units * unit) if units else '0'


def _human(size):
    """Bytes for a message: exact when a binary suffix fits, else one decimal (115.2G)."""
    text = format_size(size)
    if not size or text[-1] in 'KMGTPE' and size >= 1 << 30 or size < 1 << 20:
        return text if size else '0'
    for suffix, shift in (('T', 40), ('G', 30), ('M', 20)):
        if size >= 1 << shift:
            return '%.1f%s' % (size / float(1 << shift), suffix)
    return text


def _node_cores_text(state, node):
    topo = state.host.topo
    total = len(topo.node_cores.get(node, []))
    parts = []
    kept = sum(1 for i in topo.node_cores.get(node, []) if i in state.keep)
    if kept:
        parts.append('%d kept for the Boot Kernel' % kept)
    held = {}
    for i in topo.node_cores.get(node, []):
        if i in state.host.unavailable:
            holder = state.host.holders.get(i)
            held[holder] = held.get(holder, 0) + 1
    for holder in sorted(held, key=str):
        parts.append('%d held by Parker partition %s, which this intent does not have' % (held[holder], holder))
    for name, count in state.given_cores.get(node, []):
        parts.append('%d given to %s' % (count, name))
    return '%d whole cores%s' % (total, (': ' + ', '.join(parts)) if parts else '')


def _memory_text(state, node):
    unit = state.host.unit
    label, capacity = state.host.mem_detail.get(node, (None, 0))
    left = state.mem_left.get(node, 0)
    given = ', '.join('%s to %s' % (_size(units, unit), name) for name, units in state.given_memory.get(node, []))
    reserve = state.intent['housekeeping']['memory']
    pieces = ['%s left in whole %s units' % (_size(left, unit), format_size(unit))]
    if label:
        pieces.append('%s %s%s' % (_human(capacity), label,
                                   ' after the Boot Kernel\'s %s' % format_size(reserve) if reserve else ''))
    if given:
        pieces.append('given: ' + given)
    return '; '.join(pieces)


def _memory_problem(part, node, need, state):
    host = state.host
    name = part['name']
    if not host.has_memory.get(node, False):
        return ('%s\'s memory would come from node %s, the node of its first CPU (Parker takes it there), but node %s '
                'has no memory (a memoryless node): put %s on another node' % (name, node, node, name))
    if need < 1:
        return ('%s asks for %s of node %s\'s memory for partitions (%s), less than one %s unit'
                % (name, format_share(part['memory'][1]), node, _size(host.mem_units.get(node, 0), host.unit),
                   format_size(host.unit)))
    if need > state.mem_left.get(node, 0):
        return ('node %s has %s for partitions (%s); %s asks for %s'
                % (node, _size(state.mem_left.get(node, 0), host.unit), _memory_text(state, node), name,
                   _size(need, host.unit)))
    return None


def _device_why(state, position, name):
    """Why device ``position`` cannot go to partition ``name``, or None."""
    host = state.host
    status = host.devices[position][7]
    dev = host.dev_facts[position]
    label = device_label(dev)
    if position in state.taken:
        return '%s is given to %s' % (label, state.taken[position])
    if status == 'ok' or status == 'own:' + name:
        return None
    if status == 'boot':
        reasons = [what for flag, what in (('ssh', 'carries the SSH connection Ansible uses'),
                                           ('default_route', 'carries the default route'),
                                           ('root_fs', 'holds the root filesystem')) if dev.get(flag)]
        reasons.extend(dev.get('in_use') or [])
        return '%s is the Boot Kernel\'s: %s' % (label, '; '.join(reasons))
    if status == 'foreign':
        return '%s is held by Parker partition %s, which this intent does not have' % (label, dev.get('claimed_by'))
    if status.startswith('own:'):
        return '%s is held by partition %s' % (label, status[4:])
    return '%s has no host driver (Parker\'s bind needs the device bound to one)' % label


def _usable(state, position, name):
    status = state.host.devices[position][7]
    return position not in state.taken and (status == 'ok' or status == 'own:' + name)


def _matches(request, dev):
    node, klass, vendor, device, driver, names, _group, _status = dev
    if request['class'] and not klass.startswith(request['class']):
        return False
    if request['vendor'] and vendor != request['vendor']:
        return False
    if request['device'] and device != request['device']:
        return False
    if request['driver'] and driver != request['driver']:
        return False
    if request['name']:
        if not any(fnmatchcase(n, request['name']) for n in names):
            return False
    return True


def _rank(state, node, primary, nodes):
    if node is None:
        return FAR
    if node == primary:
        return 0
    if node in nodes:
        return 1
    row = state.host.distances.get(primary)
    if row and node in state.host.node_ids:
        return 2 + row[state.host.node_ids.index(node)]
    return 2 + 1000 + node


def _take(state, request, name, primary, nodes, dry=False):
    """Devices for one request: (positions, companions, problem or None, remote count)."""
    host = state.host
    matched = [i for i, dev in enumerate(host.devices) if _matches(request, dev)]
    if not matched:
        return [], [], ('%s asks for %d %s; no device on this host matches'
                        % (name, request['count'], request['label'])), 0
    matched_set = set(matched)
    candidates, blocked, seen = [], [], set()
    for position in matched:
        group = host.devices[position][6]
        if group in seen:
            continue
        seen.add(group)
        members = host.groups[group]
        bad = [m for m in members if not _usable(state, m, name)]
        wanted = [m for m in members if m in matched_set]
        if bad:
            if not dry:
                blocked.append((wanted, members, bad))
            continue
        node = host.devices[wanted[0]][0]
        candidates.append((_rank(state, node, primary, nodes), members[0], wanted, members))
    candidates.sort(key=lambda c: (c[0], c[1]))
    remaining = request['count']
    chosen, companions, skipped, remote = [], [], [], 0
    for rank, _first, wanted, members in candidates:
        if remaining == 0:
            break
        if request['local'] == 'require' and rank > 1:
            skipped.append(('remote', wanted))
            continue
        if len(wanted) > remaining:
            skipped.append(('group', wanted, members))
            continue
        chosen.extend(wanted)
        companions.extend(m for m in members if m not in matched_set)
        remaining -= len(wanted)
        if rank > 1:
            remote += len(wanted)
    if remaining == 0 or dry:
        return chosen, companions, (None if remaining == 0 else 'short'), remote

    def label(position):
        return device_label(host.dev_facts[position])
    text = '%s asks for %d %s%s; %s' % (
        name, request['count'], request['label'], ' on its node %s' % primary if request['local'] == 'require' else '',
        ('only %d can be given (%s)' % (len(chosen), ', '.join(label(i) for i in chosen))) if chosen
        else 'none can be given')
    notes = []
    for wanted, members, bad in blocked:
        notes.extend(_device_why(state, position, name) for position in bad)
        good = [w for w in wanted if w not in bad]
        if good:
            notes.append('%s shares IOMMU group %s with %s, and a partition takes whole groups only'
                         % (', '.join(label(w) for w in good), host.group_names.get(host.devices[good[0]][6]),
                            ', '.join(label(m) for m in bad)))
    for entry in skipped:
        if entry[0] == 'remote':
            notes.append('%s is on node %s, not on %s\'s node %s' % (
                ', '.join(label(i) for i in entry[1]), host.devices[entry[1][0]][0], name, primary))
        else:
            notes.append('%s come as one IOMMU group of %d, more than the %d still wanted'
                         % (', '.join(label(i) for i in entry[1]), len(entry[2]), remaining))
    if notes:
        text += '. Not usable: ' + '; '.join(notes)
    return chosen, companions, text, remote


def _devices(state, part, primary, nodes):
    """All device requests of a partition: (positions, companions, problems, warnings)."""
    name = part['name']
    chosen, companions, problems, warnings = [], [], [], []
    provisional = {}
    for request in part['devices']:
        positions, extra, problem, remote = _take(state, request, name, primary, nodes)
        for position in positions + extra:
            state.taken[position] = name
            provisional[position] = True
        chosen.extend(positions)
        companions.extend(extra)
        if problem:
            problems.append(problem)
        if remote:
            unknown = sum(1 for p in positions if state.host.devices[p][0] is None)
            if unknown:
                warnings.append('%s: %d %s device%s with no NUMA node in the facts' % (
                    name, unknown, request['label'], '' if unknown == 1 else 's'))
            if remote - unknown:
                warnings.append('%s: %d %s device%s from another node than its node %s (none left there)' % (
                    name, remote - unknown, request['label'], '' if remote - unknown == 1 else 's', primary))
    for position in provisional:
        del state.taken[position]
    if len(chosen) + len(companions) > MAX_DEVICES:
        problems.append('%s would get %d PCI devices; Parker allows %d per partition'
                        % (name, len(chosen) + len(companions), MAX_DEVICES))
    return chosen, companions, problems, warnings


def _device_score(state, part, node):
    score = 0
    for request in part['devices']:
        local = dict(request, local='require')
        _chosen, _extra, problem, _remote = _take(state, local, part['name'], node, (node,), dry=True)
        score += problem is None
    return score


def _levels(topo, part):
    return (topo.core_die, topo.core_group) if part['cache'] == 'prefer' else ()


def _place_packed(state, part, want):
    """(node, cores, memory units) or problems."""
    topo = state.host.topo
    name = part['name']
    if part['node'] is not None:
        node = part['node']
        problems = []
        if node not in topo.node_cores:
            return ['%s asks for node %s, which has no CPUs (a memory-only node)' % (name, node)]
        free = state.free[node]
        if part['cpus'][0] == 'rest':
            want = len(free)
            if not want:
                problems.append('node %s has no free whole cores left for %s, the rest of node %s (%s)'
                                % (node, name, node, _node_cores_text(state, node)))
        elif len(free) < want:
            problems.append('node %s has %d free whole cores (%s); %s asks for %d'
                            % (node, len(free), _node_cores_text(state, node), name, want))
        need = _mem_need(part, node, state)
        problem = _memory_problem(part, node, need, state)
        if problem:
            problems.append(problem)
        if problems:
            return problems
        return node, _pick(topo, free, want, _levels(topo, part)), need
    feasible, rows = [], []
    for node in topo.nodes:
        free = state.free[node]
        need = _mem_need(part, node, state)
        cores_ok = len(free) >= want
        mem_ok = state.host.has_memory.get(node, False) and 1 <= need <= state.mem_left.get(node, 0)
        if cores_ok and mem_ok:
            feasible.append((node, need))
        rows.append('node %s: %d free whole cores, %s%s' % (
            node, len(free), _size(state.mem_left.get(node, 0), state.host.unit) if state.host.has_memory.get(
                node, False) else 'no memory', '' if part['memory'][0] == 'size' else ' (%s of it is %s)' % (
                format_share(part['memory'][1]), _size(need, state.host.unit))))
    if not feasible:
        wanted = '%d whole cores and %s' % (want, format_size(part['memory'][1]) if part['memory'][0] == 'size'
                                            else '%s of the node\'s memory' % format_share(part['memory'][1]))
        return ['no node has room for %s (%s in one node): %s' % (name, wanted, '; '.join(rows))]
    if len(feasible) > 1 and part['devices']:
        scored = [(_device_score(state, part, node), len(state.free[node]), -node, node, need)
                  for node, need in feasible]
        best = max(scored)
        node, need = best[3], best[4]
    else:
        node, need = max(feasible, key=lambda f: (len(state.free[f[0]]), -f[0]))
    return node, _pick(topo, state.free[node], want, _levels(topo, part)), need


def _place_spread(state, part, want):
    topo = state.host.topo
    name = part['name']
    nodes = [n for n in topo.nodes if state.free[n]]
    total = sum(len(state.free[n]) for n in nodes)
    if part['cpus'][0] == 'rest':
        want = total
        if not want:
            return ['the host has no free whole cores left for %s, the rest of the host' % name]
    if total < want:
        return ['the host has %d free whole cores in all (%s); %s asks for %d spread over its nodes'
                % (total, '; '.join('node %s: %d' % (n, len(state.free[n])) for n in topo.nodes), name, want)]
    counts = dict((n, 0) for n in nodes)
    left = want
    while left:
        for node in nodes:
            if left and counts[node] < len(state.free[node]):
                counts[node] += 1
                left -= 1
    cores = []
    for node in nodes:
        if counts[node]:
            cores.extend(_pick(topo, state.free[node], counts[node], _levels(topo, part)))
    first = min(cores, key=topo.rank.__getitem__)
    node = topo.core_node[first]
    need = _mem_need(part, node, state)
    problem = _memory_problem(part, node, need, state)
    if problem:
        return ['%s spreads over nodes %s; %s' % (name, ','.join(str(n) for n in nodes if counts[n]), problem)]
    return node, sorted(cores), need


def _solve(host, intent):
    state = _State(host, intent)
    topo = host.topo
    wants = {}
    for part in intent['partitions']:
        wants[part['name']] = _want(part, state)
    order = sorted(intent['partitions'], key=lambda p: (_phase(p), -(wants[p['name']] or 0), p['index']))
    for part in order:
        name = part['name']
        want = wants[name]
        if want is not None and want < 1:
            scope = ('node %s\'s' % part['node']) if part['node'] is not None else 'the host\'s'
            base = state.base_free.get(part['node'], 0) if part['node'] is not None else state.host_base
            state.reasons.append((part['index'], '%s asks for %s of %s %d whole cores for partitions, less than '
                                  'one core' % (name, format_share(part['cpus'][1]), scope, base)))
            continue
        if part['placement'] == 'spread':
            placed = _place_spread(state, part, want)
        else:
            placed = _place_packed(state, part, want)
        if isinstance(placed, list):
            state.reasons.extend((part['index'], text) for text in placed)
            continue
        node, cores, need = placed
        threads = sum(len(topo.cores[i]) for i in cores) if part['smt'] == 'whole' else len(cores)
        problems = []
        if threads > MAX_THREADS:
            problems.append('%s would get %d CPUs; Parker allows %d per partition' % (name, threads, MAX_THREADS))
        nodes = sorted(set(topo.core_node[i] for i in cores))
        chosen, companions, device_problems, device_warnings = _devices(state, part, node, nodes)
        problems.extend(device_problems)
        if problems:
            state.reasons.extend((part['index'], text) for text in problems)
            continue
        # Commit.
        taken = set(cores)
        for n in nodes:
            state.free[n] = [i for i in state.free[n] if i not in taken]
            state.given_cores[n].append((name, sum(1 for i in cores if topo.core_node[i] == n)))
        state.mem_left[node] -= need
        state.given_memory[node].append((name, need))
        for position in chosen + companions:
            state.taken[position] = name
        groups = sorted(set(topo.core_group[i] for i in cores))
        dies = sorted(set(topo.core_die[i] for i in cores))
        warnings = list(device_warnings)
        if topo.llc_shown and part['cache'] == 'prefer':
            for n in nodes:
                mine = [i for i in cores if topo.core_node[i] == n]
                used = set(topo.core_group[i] for i in mine)
                largest = max(g[3] - g[2] for g in topo.groups if g[0] == n)
                if len(used) > 1 and len(mine) <= largest:
                    warnings.append('%s spans %d last-level cache domains on node %s: no single one there had %d '
                                    'free whole cores' % (name, len(used), n, len(mine)))
        state.warnings.extend(warnings)
        state.parts[name] = {
            'cores': sorted(cores), 'cpus': _topology.cores_cpulist(topo, sorted(cores), part['smt']),
            'threads': threads, 'memory_node': node, 'memory_units': need, 'nodes': nodes,
            'devices': sorted(chosen), 'companions': sorted(companions), 'llc_domains': len(groups),
            'dies': len(dies), 'smt': part['smt'],
        }
    keep = sorted(state.keep)
    memory_by_node = {}
    for node, given in state.given_memory.items():
        units = sum(u for _n, u in given)
        if units:
            memory_by_node[str(node)] = _size(units, host.unit)
    reasons = [text for _index, text in sorted(state.reasons, key=itemgetter(0))]
    return {'ok': not reasons, 'reasons': reasons, 'warnings': state.warnings, 'parts': state.parts,
            'housekeeping': keep, 'housekeeping_cpus': _topology.cores_cpulist(topo, keep),
            'memory_by_node': memory_by_node}


def _message_key(host):
    """What a refusal's wording reads beyond ``host.key``: addresses, in-use reasons, holders, exact sizes."""
    devices = tuple((bool(d.get('ssh')), bool(d.get('default_route')), bool(d.get('root_fs')),
                     tuple(d.get('in_use') or ()), d.get('claimed_by'), d.get('class')) for d in host.dev_facts)
    return (host.key, tuple(host.addresses), devices, tuple(sorted(host.holders.items())),
            tuple(sorted(host.mem_detail.items())), tuple(sorted(host.group_names.items(), key=lambda kv: kv[0])))


def solve(host, intent, cache=True):
    """The positional solution for a host. Decisions read only ``host.key``, so one that fits is cached by it;
    a refusal's wording names the host's own devices and sizes, so it is cached with those too."""
    if not cache:
        return _solve(host, intent)
    found = _SOLUTIONS.get(host.key)
    if found is not None:
        return found
    refusal_key = _message_key(host)
    found = _SOLUTIONS.get(refusal_key)
    if found is not None:
        return found
    solution = _solve(host, intent)
    if len(_SOLUTIONS) >= _SOLUTION_LIMIT:
        _SOLUTIONS.clear()
    _SOLUTIONS[host.key if solution['ok'] else refusal_key] = solution
    return solution


# -- per host: identities, addresses, the plan ------------------------------------------------------------

def _ipv4(value):
    return '%d.%d.%d.%d' % ((value >> 24) & 255, (value >> 16) & 255, (value >> 8) & 255, value & 255)


def _hostname(template, identity, name):
    host = identity['name'] or ''
    fields = {'host': host, 'short': host.split('.')[0], 'partition': name,
              'index': '' if identity['index'] is None else str(identity['index'])}
    if ('{host}' in template or '{short}' in template) and not host:
        return None, 'the host name template %r needs host_identity.name' % template
    if '{index}' in template and identity['index'] is None:
        return None, 'the host name template %r needs host_identity.index' % template
    value = template
    for key, text in fields.items():
        value = value.replace('{%s}' % key, text)
    labels = value.split('.')
    if len(value) > 253 or not all(1 <= len(lab) <= 63 and lab[0] != '-' and lab[-1] != '-' and
                                   all(c.isalnum() or c == '-' for c in lab) for lab in labels):
        return None, 'host name %r (from %r) is not a valid host name' % (value, template)
    return value, None


def _network(part, intent, identity):
    """(network dict or None, problem or None)."""
    name = part['name']
    spec = part['network']
    given = identity['networks'].get(name)
    if spec is None and given is None:
        return None, None
    spec = spec or {'pool': None, 'slot': 0, 'hostname': None, 'iface': None}
    network = {}
    pool = intent['pools'].get(spec['pool']) if spec['pool'] else None
    if given and given.get('address'):
        network['address'] = given['address']
    elif pool is not None:
        if identity['index'] is None:
            return None, ('%s\'s address comes from pool %s, which needs this host\'s index (host_identity.index, '
                          'e.g. the host variable parker_host_index); none given' % (name, spec['pool']))
        offset = pool['first'] + identity['index'] * pool['stride'] + spec['slot']
        where = 'host index %d x stride %d + slot %d + first %d = offset %d' % (
            identity['index'], pool['stride'], spec['slot'], pool['first'], offset)
        if offset >= pool['size']:
            return None, ('%s: %s is beyond pool %s (%s, %d addresses)'
                          % (name, where, spec['pool'], pool['network'], pool['size']))
        if offset == 0 or (pool['prefix'] < 31 and offset == pool['size'] - 1):
            return None, '%s: %s is pool %s\'s %s address' % (name, where, spec['pool'],
                                                              'network' if offset == 0 else 'broadcast')
        address = _ipv4(pool['base'] + offset)
        if address == pool['gateway']:
            return None, '%s: %s is pool %s\'s gateway %s' % (name, where, spec['pool'], address)
        network['address'] = '%s/%d' % (address, pool['prefix'])
    else:
        return None, ('%s has a network but no address: give host_identity.networks.%s.address (host variables) '
                      'or a pool in the intent' % (name, name))
    gateway = (given or {}).get('gateway') or (pool['gateway'] if pool else None)
    if gateway:
        network['gateway'] = gateway
    hostname = (given or {}).get('hostname')
    if not hostname and spec['hostname']:
        hostname, problem = _hostname(spec['hostname'], identity, name)
        if problem:
            return None, '%s: %s' % (name, problem)
    if hostname:
        network['hostname'] = hostname
    iface = (given or {}).get('iface') or spec['iface']
    if iface:
        network['iface'] = iface
    return network, None


def _facts_of(facts):
    if isinstance(facts, dict) and 'parker_kernel' in facts and 'cpus' not in facts:
        facts = facts['parker_kernel']
    if not isinstance(facts, dict) or not isinstance(facts.get('cpus'), dict) or 'list' not in facts['cpus'] \
            or not isinstance(facts.get('numa'), dict):
        raise IntentError(['facts: expected ansible_facts.parker_kernel from parker.kernel.partition_facts with '
                           'at least the cpus and numa subsets (and memory, pci, parker)'], 'parker plan')
    return facts


def _unknown_nodes(facts, intent, topo):
    known = set(n['id'] for n in (facts.get('numa') or {}).get('nodes') or []) | set(topo.nodes)
    errors = []
    for part in intent['partitions']:
        if part['node'] is not None and part['node'] not in known:
            errors.append('partitions[%d] (%s).node: node %d does not exist on this host (nodes: %s)'
                          % (part['index'], part['name'], part['node'], format_cpulist(known) or 'none'))
    if errors:
        raise IntentError(errors)


def plan_host(facts, intent, identity=None, cache=True):
    """One host's plan. ``facts``: ansible_facts.parker_kernel; ``intent``: the intent (raw or validated);
    ``identity``: {name, index, networks} (or the host name). Raises IntentError for a bad intent or identity;
    an intent that does not fit the host gives ``refused: true`` and every reason."""
    intent = validated(intent)
    identity = validate_identity(identity)
    facts = _facts_of(facts)
    host = _build_host(facts, intent)
    _unknown_nodes(facts, intent, host.topo)
    reasons = list(host.problems)
    fingerprint = host.fingerprint
    if intent['hardware_class'] and intent['hardware_class'] != fingerprint['id']:
        reasons.append('this host\'s hardware class is %s (%s); the intent is for %s'
                       % (fingerprint['id'], fingerprint['summary'], intent['hardware_class']))
    if host.topo.missing:
        reasons.append('CPUs %s have no topology in the facts (offline, and no cached topology): gather the facts '
                       'while every CPU is online, before partitions take them' % format_cpulist(host.topo.missing))
    solution = solve(host, intent, cache=cache and not reasons)
    reasons.extend(solution['reasons'])
    warnings = list(solution['warnings'])
    partitions, placement = [], []
    if solution['ok']:
        for part in intent['partitions']:
            found = solution['parts'][part['name']]
            devices = sorted(host.addresses[i] for i in found['devices'] + found['companions'])
            entry = {'name': part['name'], 'cpus': found['cpus'],
                     'memory': _size(found['memory_units'], host.unit), 'devices': devices}
            network, problem = _network(part, intent, identity)
            if problem:
                reasons.append(problem)
            elif network:
                entry['network'] = network
            for key, value in part['extra']:
                entry[key] = copy.deepcopy(value)
            partitions.append(entry)
            for position in found['companions']:
                group = host.group_names.get(host.devices[position][6])
                warnings.append('%s also takes %s: it shares IOMMU group %s with a device it asked for'
                                % (part['name'], device_label(host.dev_facts[position]), group))
            placement.append({'name': part['name'], 'nodes': list(found['nodes']),
                              'memory_node': found['memory_node'], 'cores': len(found['cores']),
                              'threads': found['threads'], 'smt': found['smt'], 'llc_domains': found['llc_domains'],
                              'dies': found['dies']})
    for name in sorted(set(identity['networks']) - intent['names']):
        warnings.append('host_identity.networks names %s, which the intent has no partition for' % name)
    refused = bool(reasons)
    return {
        'host': identity['name'],
        'fingerprint': fingerprint['id'],
        'hardware': fingerprint['summary'],
        'intent': intent['digest'],
        'refused': refused,
        'reasons': reasons,
        'warnings': warnings,
        'partitions': [] if refused else partitions,
        'placement': [] if refused else placement,
        'housekeeping': {'cpus': solution['housekeeping_cpus'], 'cores': len(solution['housekeeping'])},
        'memory_by_node': {} if refused else dict(solution['memory_by_node']),
        'memory_unit': format_size(host.unit),
    }


def plan_changes(previous, current):
    """What changed from one plan of a host to the next, as sentences (pure): for the review of a plan directory."""
    if not previous:
        return ['new plan']
    found = []
    if previous.get('fingerprint') != current.get('fingerprint'):
        found.append('hardware class %s, was %s' % (current.get('fingerprint'), previous.get('fingerprint')))
    if bool(previous.get('refused')) != bool(current.get('refused')):
        found.append('refused now: %s' % '; '.join(current.get('reasons') or []) if current.get('refused')
                     else 'planned now (was refused)')
    before = dict((p['name'], p) for p in previous.get('partitions') or [])
    after = dict((p['name'], p) for p in current.get('partitions') or [])
    for name in sorted(set(before) - set(after)):
        found.append('%s removed' % name)
    for name in sorted(set(after) - set(before)):
        found.append('%s added: cpus %s, memory %s, devices %s'
                     % (name, after[name].get('cpus'), after[name].get('memory'),
                        ','.join(after[name].get('devices') or []) or '-'))
    for name in sorted(set(before) & set(after)):
        for key in sorted(set(before[name]) | set(after[name])):
            if before[name].get(key) != after[name].get(key):
                found.append('%s %s: %s, was %s' % (name, key, _shown(after[name].get(key)),
                                                    _shown(before[name].get(key))))
    return found


def _shown(value):
    if isinstance(value, list):
        return ','.join(str(v) for v in value) or '-'
    if isinstance(value, dict):
        return ', '.join('%s=%s' % kv for kv in sorted(value.items()))
    return '-' if value is None else str(value)
