# -*- coding: utf-8 -*-
# Copyright (c) parker.kernel contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# This module util is PRIVATE to the parker.kernel collection.
# It can have breaking changes at any time.

"""Drift: how a host differs from the partitions planned for it, and whether its hardware changed (pure).

Each drift item says what differs, naming the partition and the resource, and how
it is handled: ``repair`` (the apply puts it back: a CPU or memory block the Boot
Kernel took back is offlined again, a missing partition is built), or ``refuse``
(the apply refuses the host, naming it: a device a host driver took back, an
Application Kernel that does not answer or has stopped, a partition not in the
plan, a boot-line token the running kernel lacks).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.parker.kernel.plugins.module_utils._cpulist import format_cpulist, cpus_of
from ansible_collections.parker.kernel.plugins.module_utils._cmdline import format_size

IN_PLAN, DRIFTED, HARDWARE_CHANGED, REFUSED = 'in plan', 'drifted', 'hardware changed', 'refused'


def item(kind, message, repair, partition=None, **details):
    found = {'kind': kind, 'partition': partition, 'message': message, 'repair': repair}
    found.update(details)
    return found


# -- hardware -----------------------------------------------------------------

def hardware_summary(cpu_facts, memory_facts, pci):
    """What the partitions were planned on: CPUs per node, memory per node, PCI functions but SR-IOV VFs (pure).

    Only what stays put while partitions hold resources: an offline CPU keeps its node link and an
    offline memory block stays listed, a claimed device stays in the PCI tree.
    """
    nodes = {}
    for cpu in cpu_facts['list']:
        nodes.setdefault(str(cpu['node']), set()).add(cpu['id'])
    memory = {}
    for block in memory_facts.get('blocks') or []:
        key = str(block['node'])
        memory[key] = memory.get(key, 0) + (memory_facts['block_size'] or 0)
    return {
        'cpus': dict((node, format_cpulist(cpus)) for node, cpus in sorted(nodes.items())),
        'memory': memory,
        # Not the SR-IOV virtual functions: a physical function handed to a partition takes its VFs away with it.
        'pci': sorted('%s %s:%s %s' % (d['address'], d['vendor'], d['device'], d['class']) for d in pci['devices']
                      if not d.get('sriov_vf')),
    }


def hardware_changes(planned, now):
    """Sentences naming what differs between two hardware_summary() values (pure)."""
    changes = []
    for node in sorted(set(planned.get('cpus', {})) | set(now.get('cpus', {}))):
        before, after = planned.get('cpus', {}).get(node), now.get('cpus', {}).get(node)
        if before != after:
            changes.append('CPUs of node %s: %s, planned on %s' % (node, after or 'none', before or 'none'))
    for node in sorted(set(planned.get('memory', {})) | set(now.get('memory', {}))):
        before, after = planned.get('memory', {}).get(node, 0), now.get('memory', {}).get(node, 0)
        if before != after:
            changes.append('memory of node %s: %s, planned on %s'
                           % (node, format_size(after) or '0', format_size(before) or '0'))
    before, after = set(planned.get('pci', [])), set(now.get('pci', []))
    changes.extend('PCI device %s is gone' % d for d in sorted(before - after))
    changes.extend('PCI device %s is new' % d for d in sorted(after - before))
    return changes


# -- the partitions -------------------------------------------------------------

def partition_drift(spec, part, record, cpu_facts, memory_facts, pci, health):
    """Drift of one planned partition that the kernel holds (pure). ``part`` is its kernfs view,
    ``record`` what the collection recorded when it built it, ``health`` its probe or None."""
    name = spec['name']
    found = []
    online = set(c['id'] for c in cpu_facts['list'] if c['online'])
    back = sorted(cpus_of(part['cpus']) & online)
    if back:
        found.append(item('cpu_online', 'CPU %s of %s is online in the Boot Kernel (taken back behind Parker\'s '
                                        'back, by a udev rule or a hotplug tool?)' % (format_cpulist(back), name),
                          'repair', name, cpus=back))
    states = dict((b['id'], b['state']) for b in memory_facts.get('blocks') or [])
    blocks = sorted(b for b in (record or {}).get('blocks') or [] if states.get(b, 'offline') != 'offline')
    if blocks:
        found.append(item('memory_online', 'memory block %s of %s is online in the Boot Kernel'
                          % (format_cpulist(blocks), name), 'repair', name, blocks=blocks))
    index = dict((d['address'], d) for d in pci['devices'])
    for bdf in sorted(part['devices']):
        dev = index.get(bdf) or {}
        names = (dev.get('net') or []) + (dev.get('block') or [])
        if names:
            found.append(item('device_returned', '%s (%s) of %s is back in the Boot Kernel: a host driver took it '
                                                 'while the partition holds it' % (bdf, ','.join(names), name),
                              'refuse', name, device=bdf))
    if part['online'] and health is not None and not health['healthy']:
        found.append(item('not_answering', 'the Application Kernel of %s does not answer: %s' % (name, health['detail']),
                          'refuse', name))
    return found


def missing(name, start):
    return item('missing', 'partition %s is missing%s' % (name, ' (to be built and started)' if start
                                                          else ' (to be built)'), 'repair', name)


def stopped(name):
    return item('stopped', 'the Application Kernel of %s has stopped (online reads 0) and Parker partitions are '
                           'single-use' % name, 'refuse', name)


def extra(part):
    return item('extra', 'partition %s (cpus %s%s) is not in the plan' % (
        part['name'], part['cpus'] or '-', ', running' if part['online'] else ''), 'refuse', part['name'])


def cmdline_drift(boot_tokens, running):
    absent = [t for t in boot_tokens or [] if t not in running]
    if not absent:
        return []
    return [item('cmdline', 'the running Boot Kernel lacks %s on its command line' % ' '.join(absent), 'refuse',
                 tokens=absent)]


def status(drift, hardware):
    """in plan, drifted, or hardware changed (that wins: a plan for other hardware means nothing)."""
    if hardware:
        return HARDWARE_CHANGED
    return DRIFTED if drift else IN_PLAN


# -- Prometheus textfile ----------------------------------------------------------

def metrics(host_status, drift, partitions, now):
    """The result as node_exporter textfile metrics (pure); ``now`` is the Unix time of the check."""
    lines = [
        '# HELP parker_kernel_in_plan 1 when the host matches its planned partitions.',
        '# TYPE parker_kernel_in_plan gauge',
        'parker_kernel_in_plan %d' % (host_status == IN_PLAN),
        '# HELP parker_kernel_hardware_changed 1 when the hardware differs from what the plan was made for.',
        '# TYPE parker_kernel_hardware_changed gauge',
        'parker_kernel_hardware_changed %d' % (host_status == HARDWARE_CHANGED),
        '# HELP parker_kernel_drift Drift items by kind.',
        '# TYPE parker_kernel_drift gauge',
    ]
    kinds = {}
    for found in drift:
        kinds[found['kind']] = kinds.get(found['kind'], 0) + 1
    for kind in sorted(kinds):
        lines.append('parker_kernel_drift{kind="%s"} %d' % (kind, kinds[kind]))
    lines += ['# HELP parker_kernel_partition_online 1 when the partition\'s Application Kernel reports online.',
              '# TYPE parker_kernel_partition_online gauge']
    lines += ['parker_kernel_partition_online{partition="%s"} %d' % (p['name'], bool(p.get('online')))
              for p in partitions]
    lines += ['# HELP parker_kernel_partition_healthy 1 when the Application Kernel answered its health probe.',
              '# TYPE parker_kernel_partition_healthy gauge']
    lines += ['parker_kernel_partition_healthy{partition="%s"} %d' % (p['name'], p.get('healthy') is True)
              for p in partitions if p.get('healthy') is not None]
    lines += ['# HELP parker_kernel_verify_timestamp_seconds When the host was last checked.',
              '# TYPE parker_kernel_verify_timestamp_seconds gauge',
              'parker_kernel_verify_timestamp_seconds %d' % now]
    return '\n'.join(lines) + '\n'
