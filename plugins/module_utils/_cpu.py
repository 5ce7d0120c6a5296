# -*- coding: utf-8 -*-
# Copyright (c) parker.kernel contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# This module util is PRIVATE to the parker.kernel collection.
# It can have breaking changes at any time.

"""CPU hotplug: plan (pure), apply and verify for parker.kernel.cpu_offline."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import errno

from ansible_collections.parker.kernel.plugins.module_utils._cpulist import parse_cpus, format_cpulist, CpulistError
from ansible_collections.parker.kernel.plugins.module_utils._common import Refused, refuse_all, diff_of
from ansible_collections.parker.kernel.plugins.module_utils._hostio import ApplyError
from ansible_collections.parker.kernel.plugins.module_utils import _facts


def plan_cpu_change(facts, claimed, request):
    """Return (targets, to_change) or raise Refused. ``facts`` is cpu_facts()."""
    by_id = dict((c['id'], c) for c in facts['list'])
    possible = parse_cpus(facts['possible']) if facts['possible'] else set(by_id)
    last_cpu = max(possible) if possible else None
    try:
        targets = parse_cpus(request['cpus'], last_cpu)
    except CpulistError as exc:
        raise Refused('cpus: %s' % exc)
    if not targets:
        raise Refused('cpus: the list is empty')
    online = set(c['id'] for c in facts['list'] if c['online'])
    offline_state = request['state'] == 'offline'
    force = request['force']
    problems = []

    missing = sorted(targets - set(by_id))
    if missing:
        problems.append('CPUs %s are not present on this host (present: %s)'
                        % (format_cpulist(missing), facts['present']))
    fixed = sorted(c for c in targets & set(by_id) if not by_id[c]['hotpluggable'])
    if fixed and offline_state:
        problems.append('CPU %s is the boot CPU or not hot-pluggable (no cpuN/online file); '
                        'it cannot be taken from the Boot Kernel' % format_cpulist(fixed))

    present_targets = targets & set(by_id)
    to_change = (present_targets & online) if offline_state else (present_targets - online)
    after = (online - to_change) if offline_state else (online | to_change)

    if not offline_state and not force:
        stolen = sorted(to_change & claimed)
        if stolen:
            problems.append('CPUs %s belong to a Parker partition; onlining them in the host would take '
                            'them from an Application Kernel (force=true overrides)' % format_cpulist(stolen))
    if offline_state and not after:
        problems.append('offlining %s would leave the Boot Kernel with no online CPU' % format_cpulist(targets))
    elif not force:
        groups = _facts.smt_groups(facts['list'])
        if not request['allow_smt_split']:
            for members in groups.values():
                touched = members & to_change
                if touched and (members & after) and (members - after):
                    problems.append('CPUs %s split the SMT core %s (siblings %s stay %s); list whole cores or set '
                                    'allow_smt_split=true' % (format_cpulist(touched), format_cpulist(members),
                                                              format_cpulist(members - touched),
                                                              'online' if offline_state else 'offline'))
        if offline_state:
            whole = [m for m in groups.values() if m <= after]
            need = request['min_housekeeping_cores']
            if len(whole) < need:
                problems.append('offlining %s would leave %d whole online core(s) for housekeeping, fewer than '
                                'min_housekeeping_cores=%d (online after: %s)'
                                % (format_cpulist(to_change), len(whole), need, format_cpulist(after) or 'none'))
    refuse_all(problems)
    return targets, to_change, after


def run_cpu_offline(params, io, txn):
    facts = _facts.cpu_facts(io)
    claimed, _devices = _facts.parker_claims(io, params['parker_root'])
    targets, to_change, after = plan_cpu_change(facts, claimed, params)
    offline_state = params['state'] == 'offline'

    if to_change and offline_state:
        # The topology directory vanishes with the CPU: keep it for the facts module.
        cache = io.load_json(_facts.TOPOLOGY_CACHE, {})
        for cpu in facts['list']:
            if cpu['id'] in to_change and cpu['topology_source'] == 'sysfs':
                cache[str(cpu['id'])] = dict((k, cpu[k]) for k in
                                             ('apic_id', 'package', 'die', 'core', 'thread_siblings', 'core_cpus',
                                              'llc'))
        txn.save_json(_facts.TOPOLOGY_CACHE, cache)

    value, undo = ('0', '1') if offline_state else ('1', '0')
    for cpu in sorted(to_change):
        path = '%s/cpu%d/online' % (_facts.CPU_ROOT, cpu)
        txn.write(path, value, undo=(path, undo), retry_errnos=(errno.EBUSY, errno.EAGAIN), retry_timeout=5.0)

    if not txn.check_mode:
        # Read every changed CPU back: a write can return 0 and still not take effect.
        wrong = [cpu for cpu in to_change if io.read('%s/cpu%d/online' % (_facts.CPU_ROOT, cpu)) != value]
        if wrong:
            raise ApplyError('verify cpuN/online', None, 'CPUs %s did not reach state %s'
                             % (format_cpulist(wrong), params['state']))
    possible = parse_cpus(facts['possible'])
    after_online, after_offline = format_cpulist(after), format_cpulist(possible - after)
    return {
        'changed': bool(to_change),
        'cpus': format_cpulist(targets),
        'changed_cpus': format_cpulist(to_change),
        'before': {'online': facts['online'], 'offline': facts['offline']},
        'after': {'online': after_online, 'offline': after_offline},
        'diff': diff_of('/sys/devices/system/cpu', 'online=%s\noffline=%s' % (facts['online'], facts['offline']),
                        'online=%s\noffline=%s' % (after_online, after_offline)),
    }
