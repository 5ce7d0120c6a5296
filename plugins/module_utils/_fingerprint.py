# -*- coding: utf-8 -*-
# Copyright (c) parker.kernel contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# This module util is PRIVATE to the parker.kernel collection.
# It can have breaking changes at any time.

"""Hardware classes: a fingerprint of a host's hardware from its facts (pure, controller side).

The fingerprint is what a plan's shape depends on and nothing a host's firmware numbers differently:
the CPU model, sockets, per NUMA node its cores, SMT threads, dies and last-level cache domains (as
core counts, in canonical order), its memory (whole GiB of memory blocks, so a crashkernel= or CMA
reservation does not change it), and its devices by class and vendor:device (bridges and other chipset
functions left out). CPU numbers, APIC ids and PCI addresses are not in it. Hosts with the same
fingerprint are one hardware class; ``outliers`` names hosts that differ from the rest of their group.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import hashlib
import json
from collections import Counter
from operator import itemgetter

from ansible_collections.parker.kernel.plugins.module_utils import _topology

GIB = 1 << 30
# PCI class prefixes that make a hardware class: storage, network, display, crypto, accelerators.
CLASSES = ('01', '02', '03', '10', '12')
KIND_NAMES = (('0108', 'NVMe'), ('02', 'NIC'), ('01', 'storage'), ('03', 'GPU'), ('12', 'accelerator'),
              ('10', 'crypto'))
_BLOCK_NODE = itemgetter('node')
_DEV_FIELDS = itemgetter('numa_node', 'class', 'vendor', 'device')
_CACHE = {}
_CACHE_LIMIT = 1024


def kind_of(klass):
    """'0x010802' -> 'NVMe'."""
    code = (klass or '').lower().replace('0x', '')
    for prefix, name in KIND_NAMES:
        if code.startswith(prefix):
            return name
    return 'class 0x%s' % code[:4]


def node_memory_gib(facts):
    """{node: GiB of memory} from the memory blocks (present memory, whatever is reserved), else MemTotal."""
    memory = facts.get('memory') or {}
    blocks, size = memory.get('blocks'), memory.get('block_size')
    if blocks and size:
        counts = Counter(map(_BLOCK_NODE, blocks))
        return dict((node, (count * size + GIB // 2) // GIB) for node, count in counts.items() if node is not None)
    found = {}
    for node in (facts.get('numa') or {}).get('nodes') or []:
        total = node.get('mem_total') or 0
        found[node['id']] = (total + GIB // 2) // GIB
    return found


def device_counts(devices):
    """((node, class prefix, vendor:device), count), sorted: the devices that make a hardware class."""
    counts = Counter()
    for node, klass, vendor, device in map(_DEV_FIELDS, devices):
        code = (klass or '').lower().replace('0x', '')
        if code[:2] in CLASSES:
            counts[(node if node is not None and node >= 0 else -1, code[:4], '%s:%s' % (vendor, device))] += 1
    return tuple(sorted(counts.items()))


def _shape(topo, model, memory, devices):
    nodes = []
    node_ids = sorted(set(n for n in topo.nodes) | set(n for n in memory if n is not None))
    by_node = dict((entry[0], entry) for entry in topo.shape)
    for node in node_ids:
        entry = by_node.get(node)
        llc, dies, threads = [], 0, set()
        socket = None
        if entry is not None:
            socket = entry[1]
            for die in entry[2]:
                dies += 1
                for cores, per_core in die:
                    llc.append(cores)
                    threads.update(per_core)
        item = {'node': node, 'socket': socket, 'cores': sum(llc), 'dies': dies, 'llc': llc,
                'threads_per_core': sorted(threads), 'memory_gib': memory.get(node, 0)}
        item['devices'] = dict(('%s %s' % (klass, vd), count) for (n, klass, vd), count in devices if n == node)
        nodes.append(item)
    unknown = dict(('%s %s' % (klass, vd), count) for (n, klass, vd), count in devices if n == -1)
    threads = sorted(set(len(c) for c in topo.cores))
    return {
        'model': model,
        'sockets': len(topo.packages),
        'cores': len(topo.cores),
        'threads': topo.cpu_count,
        'threads_per_core': threads,
        'nodes': nodes,
        'devices_without_node': unknown,
        'topology_missing': len(topo.missing),
    }


def _summary(shape, devices):
    kinds = Counter()
    for (_node, klass, _vd), count in devices:
        kinds[kind_of(klass)] += count
    llc = [len(n['llc']) for n in shape['nodes'] if n['llc']]
    llc_cores = sorted(set(c for n in shape['nodes'] for c in n['llc']))
    parts = [shape['model'] or 'unknown CPU model',
             '%d socket%s' % (shape['sockets'], '' if shape['sockets'] == 1 else 's'),
             '%d node%s' % (len(shape['nodes']), '' if len(shape['nodes']) == 1 else 's'),
             '%d cores / %d threads' % (shape['cores'], shape['threads']),
             '%d GiB' % sum(n['memory_gib'] for n in shape['nodes'])]
    if llc and llc_cores:
        parts.append('%d LLC domains of %s cores' % (sum(llc), '/'.join(str(c) for c in llc_cores)))
    if kinds:
        parts.append(', '.join('%d %s' % (kinds[k], k) for k in sorted(kinds)))
    if shape['topology_missing']:
        parts.append('%d CPUs without topology' % shape['topology_missing'])
    return ', '.join(parts)


def fingerprint_parts(facts, topo=None):
    """(cache key, fingerprint) of one host's facts; the key is also the planner's hardware key."""
    topo = topo or _topology.cpu_topology(facts['cpus'])
    model = (facts.get('cpus') or {}).get('model')
    memory = node_memory_gib(facts)
    devices = device_counts((facts.get('pci') or {}).get('devices') or [])
    key = (topo.ident, model, tuple(sorted(memory.items(), key=lambda kv: (kv[0] is None, kv[0]))), devices)
    found = _CACHE.get(key)
    if found is None:
        shape = _shape(topo, model, memory, devices)
        text = json.dumps(shape, sort_keys=True, separators=(',', ':'))
        found = {'id': 'hw-' + hashlib.sha256(text.encode('utf-8')).hexdigest()[:12],
                 'summary': _summary(shape, devices), 'shape': shape}
        if len(_CACHE) >= _CACHE_LIMIT:
            _CACHE.clear()
        _CACHE[key] = found
    return key, found


def hardware_fingerprint(facts):
    """{id: 'hw-<12 hex>', summary: one line, shape: the structure it hashes} for ``ansible_facts.parker_kernel``."""
    fingerprint = fingerprint_parts(facts)[1]
    return {'id': fingerprint['id'], 'summary': fingerprint['summary'], 'shape': fingerprint['shape']}


def _fingerprint_of(value):
    if isinstance(value, dict) and 'fingerprint' in value and isinstance(value['fingerprint'], str):
        return {'id': value['fingerprint'], 'summary': value.get('hardware')}   # a plan
    if isinstance(value, dict) and 'id' in value:
        return value
    if isinstance(value, str):
        return {'id': value}
    raise ValueError('expected a fingerprint (hardware_fingerprint), its id, or a plan, got %r' % (value,))


def differences(shape, other):
    """What differs between two fingerprint shapes, one phrase each (``shape`` is the odd one)."""
    if not shape or not other:
        return []
    found = []
    for key in ('model', 'sockets', 'cores', 'threads', 'threads_per_core', 'topology_missing'):
        if shape.get(key) != other.get(key):
            found.append('%s %s instead of %s' % (key.replace('_', ' '), shape.get(key), other.get(key)))
    mine = dict((n['node'], n) for n in shape.get('nodes', []))
    theirs = dict((n['node'], n) for n in other.get('nodes', []))
    for node in sorted(set(mine) | set(theirs)):
        if node not in mine or node not in theirs:
            found.append('node %s %s' % (node, 'missing' if node not in mine else 'extra'))
            continue
        for key in ('socket', 'cores', 'dies', 'llc', 'threads_per_core', 'memory_gib', 'devices'):
            if mine[node].get(key) != theirs[node].get(key):
                found.append('node %s %s %s instead of %s'
                             % (node, key.replace('_', ' '), mine[node].get(key), theirs[node].get(key)))
    if shape.get('devices_without_node') != other.get('devices_without_node'):
        found.append('devices without a node %s instead of %s' % (shape.get('devices_without_node'),
                                                                  other.get('devices_without_node')))
    return found


def hardware_classes(fingerprints):
    """{host: fingerprint or plan} -> {class id: {'summary', 'hosts': sorted host names}}."""
    classes = {}
    for host in sorted(fingerprints):
        fingerprint = _fingerprint_of(fingerprints[host])
        entry = classes.setdefault(fingerprint['id'], {'summary': fingerprint.get('summary'), 'hosts': []})
        entry['hosts'].append(host)
    return classes


def outliers(fingerprints, groups=None):
    """Hosts whose hardware differs from most of their group: [{host, group, fingerprint, expected, differences}].

    ``fingerprints``: {host: fingerprint (or plan, or id)}; ``groups``: {group: [hosts]}, default one group
    'all'. The group's class is the one most of its hosts have (ties: the lowest id), so the answer for a host
    depends on its group, never on the order hosts were listed in.
    """
    groups = groups if groups is not None else {'all': sorted(fingerprints)}
    found = []
    for group in sorted(groups):
        members = [h for h in groups[group] if h in fingerprints]
        prints = dict((h, _fingerprint_of(fingerprints[h])) for h in members)
        counts = Counter(p['id'] for p in prints.values())
        if len(counts) < 2:
            continue
        expected = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
        reference = next((p for h, p in sorted(prints.items()) if p['id'] == expected), {})
        for host in sorted(set(members)):
            mine = prints[host]
            if mine['id'] != expected:
                found.append({'host': host, 'group': group, 'fingerprint': mine['id'], 'expected': expected,
                              'summary': mine.get('summary'), 'expected_summary': reference.get('summary'),
                              'differences': differences(mine.get('shape'), reference.get('shape')),
                              'hosts_like_expected': counts[expected], 'group_size': len(set(members))})
    return found
