# -*- coding: utf-8 -*-
# Copyright (c) parker.kernel contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# This module util is PRIVATE to the parker.kernel collection.
# It can have breaking changes at any time.

"""The Parker partition planner: a host's whole request against its facts, as a value (pure).

``plan_host(facts, request)`` parses every partition of the request, checks them
together against the host (the CPUs, SMT cores and housekeeping cores left to the
Boot Kernel, each node's Parker CMA area, devices in use or asked twice, what the
kernel already holds), computes the drift from what was built before, and returns
the ordered steps (_steps) that build each partition, with every problem listed.
No I/O: ``facts`` is what _partition.gather_host read, so the same call serves check
mode, verify and the apply. The start of an Application Kernel depends on what the
kernel answers to the build (the control page, the memory's base), so its plan is
made after the build, by _partition_start.

Order the RFC imposes on the build: mkdir, cpus (the kernel offlines them), memory
(needs cpus: its node is the first CPU's), bind (the device must still be bound to
its host driver). A live partition's resources are never rewritten (a cpus rewrite
leaks CPUs), and a partition is single-use.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import re

from ansible_collections.parker.kernel.plugins.module_utils._cpulist import parse_cpus, format_cpulist, cpus_of, CpulistError
from ansible_collections.parker.kernel.plugins.module_utils._cmdline import memparse, format_size, SizeError
from ansible_collections.parker.kernel.plugins.module_utils._common import Refused
from ansible_collections.parker.kernel.plugins.module_utils._render import ip_value, RenderError
from ansible_collections.parker.kernel.plugins.module_utils import _cpu, _drift, _facts, _health, _memory, \
    _ownership, _parker, _partition_start, _pci, _state, _steps

MAX_CPUS, MAX_DEVICES = 512, 256
NAME = re.compile(r'^[A-Za-z0-9][A-Za-z0-9_.-]*$')
BUILD_ACTIONS = ('create', 'resume', 'replace')


def _held(part):
    """(cpus, memory bytes or None, sorted devices) a partition's kernfs view shows."""
    return cpus_of(part['cpus']), (part['memory'] or {}).get('size'), sorted(part['devices'])


# -- the request ------------------------------------------------------------------

def pinned_selectors(selectors, pci, pins):
    """The selectors with net=/block= ones an earlier run resolved replaced by that PCI address.

    A device handed back by rmdir is re-probed and may come back under another name (eth2, then
    renamed by udev); the inventory's selector keeps meaning the address it meant the first time.
    """
    present = set(d['address'] for d in pci['devices'])
    return [pins[str(sel).strip()] if pins.get(str(sel).strip()) in present else sel for sel in selectors]


def selector_pins(selectors, pci, names):
    """{selector: address} for each net=/block= selector that names one device."""
    pins = {}
    for sel in selectors:
        sel = str(sel).strip()
        if sel.split('=', 1)[0] in ('net', 'block') and '=' in sel:
            try:
                found = _pci.resolve_devices([sel], pci['devices'], names)
            except Refused:
                continue
            if len(found) == 1:
                pins[sel] = found[0]
    return pins


def saved_names(records):
    """{bdf: {'net': [...], 'block': [...]}} recorded for every partition: net=/block= selectors keep
    finding a device after bind took its interface or disk away from the Boot Kernel."""
    names = {}
    for record in records.values():
        names.update(record.get('names') or {})
    return names


def parse_spec(raw, state, cpu_facts, pci, names, pins):
    """One partition of the request as typed values; returns (spec, problems)."""
    name = raw.get('name')
    spec = {'name': name, 'start': state == 'started' and raw.get('start', True) is not False, 'cpus': set(),
            'memory': 0, 'devices': [], 'selectors': [], 'ip': None}
    for key in ('kernel', 'initrd', 'console', 'root', 'nokaslr', 'tsc_early_khz'):
        spec[key] = raw.get(key)
    spec['cmdline'] = list(raw.get('cmdline') or [])
    spec['health'] = _health.target(raw)
    problems = []
    if not isinstance(name, str) or not NAME.match(name):
        return spec, ['partition name %r: use letters, digits, "_", "." and "-"' % (name,)]
    if state == 'absent':
        return spec, []
    label = '%s: ' % name
    try:
        last = max(parse_cpus(cpu_facts['possible'])) if cpu_facts['possible'] else None
        spec['cpus'] = parse_cpus(raw.get('cpus') if raw.get('cpus') is not None else '', last)
        if not spec['cpus']:
            problems.append(label + 'cpus: give the partition at least one CPU')
    except (CpulistError, ValueError) as exc:
        spec['cpus'] = set()
        problems.append(label + 'cpus: %s' % exc)
    try:
        spec['memory'] = memparse(raw.get('memory'))
        if spec['memory'] <= 0:
            problems.append(label + 'memory: must be more than 0')
    except SizeError as exc:
        spec['memory'] = 0
        problems.append(label + 'memory: %s' % exc)
    spec['selectors'] = [str(s).strip() for s in raw.get('devices') or []]
    try:
        spec['devices'] = _pci.resolve_devices(pinned_selectors(spec['selectors'], pci, pins), pci['devices'],
                                               names) if spec['selectors'] else []
    except Refused as exc:
        spec['devices'] = []
        problems.extend(label + p for p in exc.details.get('problems') or [exc.msg])
    spec['ip'] = raw.get('ip')
    if not spec['ip'] and raw.get('network'):
        try:
            spec['ip'] = ip_value(raw['network'])
        except RenderError as exc:
            problems.append(label + 'network: %s' % exc)
    if len(spec['cpus']) > MAX_CPUS or len(spec['devices']) > MAX_DEVICES:
        problems.append(label + 'Parker allows at most %d CPUs and %d PCI devices per partition'
                        % (MAX_CPUS, MAX_DEVICES))
    return spec, problems


# -- host-wide checks ----------------------------------------------------------------

def _classify(spec, part, record, replace):
    """What to do with one requested partition given its kernfs view: (action, resume, problem)."""
    if part is None:
        return 'create', None, None
    cpus, memory, devices = _held(part)
    same = (cpus, memory, devices) == (spec['cpus'], spec['memory'], spec['devices'])
    if part['online']:
        if same:
            return 'keep', None, None
        return None, None, rewrite_message(spec, part, 'its Application Kernel is running: power it off from '
                                                       'inside first')
    used = bool((record or {}).get('started'))
    if used and (spec['start'] or not same):
        if replace:
            return 'replace', None, None
        return None, None, ('partition %s already ran once (its Application Kernel has stopped); Parker partitions '
                            'are single-use: set replace: true to build it again, or state absent, then started'
                            % spec['name'])
    if same:
        return 'keep', None, None
    if cpus in (set(), spec['cpus']) and memory in (None, spec['memory']) and set(devices) <= set(spec['devices']):
        # A run killed part-way leaves a prefix of mkdir, cpus, memory, bind: finish it, rewriting nothing.
        return 'resume', {'cpus': not cpus, 'memory': memory is None,
                          'devices': [d for d in spec['devices'] if d not in devices]}, None
    if replace:
        return 'replace', None, None
    return None, None, rewrite_message(spec, part, 'set replace: true to remove and recreate it')


def rewrite_message(spec, part, remedy):
    cpus, memory, devices = _held(part)
    return ('partition %s exists with cpus=%s memory=%s devices=%s; the request asks cpus=%s memory=%s devices=%s. '
            'A live partition is never rewritten (a cpus rewrite leaks CPUs in the RFC); %s'
            % (spec['name'], format_cpulist(cpus) or '-', format_size(memory or 0), ','.join(devices) or '-',
               format_cpulist(spec['cpus']), format_size(spec['memory']), ','.join(spec['devices']) or '-', remedy))


def cpu_problems(cpu_facts, parts, plans, request):
    """The CPUs of the whole run: each partition's own, then what all of them leave to the Boot Kernel."""
    by_id = dict((c['id'], c) for c in cpu_facts['list'])
    online = set(c['id'] for c in cpu_facts['list'] if c['online'])
    owner_now = {}
    for part in parts.values():
        for cpu in cpus_of(part['cpus']):
            owner_now[cpu] = part['name']
    released = set()   # CPUs of partitions this run replaces: their rmdir comes first, before any build
    owner_after = dict(owner_now)
    for plan in plans:
        if plan['action'] == 'replace':
            for cpu in cpus_of(plan['existing']['cpus']):
                released.add(cpu)
                owner_after.pop(cpu, None)
    problems, asked = [], {}
    for plan in plans:
        spec = plan['spec']
        if plan['action'] not in BUILD_ACTIONS + ('keep',):
            continue
        for cpu in sorted(spec['cpus']):
            if cpu in asked and asked[cpu] != spec['name']:
                problems.append('CPU %d is asked for by both %s and %s' % (cpu, asked[cpu], spec['name']))
            asked.setdefault(cpu, spec['name'])
        new = spec['cpus'] - (set() if plan['action'] == 'replace' else cpus_of((plan['existing'] or {}).get('cpus')))
        label = '%s: ' % spec['name']
        missing = sorted(new - set(by_id))
        if missing:
            problems.append(label + 'CPUs %s are not present on this host (present: %s)'
                            % (format_cpulist(missing), cpu_facts['present']))
        fixed = sorted(c for c in new & set(by_id) if not by_id[c]['hotpluggable'])
        if fixed:
            problems.append(label + 'CPU %s is the boot CPU or not hot-pluggable (no cpuN/online file); it cannot be '
                            'taken from the Boot Kernel' % format_cpulist(fixed))
        for other in sorted(set(owner_after.get(c) for c in new) - set([None, spec['name']])):
            taken = [c for c in new if owner_after.get(c) == other]
            problems.append(label + 'CPUs %s already belong to partition %s (the kernel answers EINVAL)'
                            % (format_cpulist(taken), other))
        offline = sorted(c for c in new & set(by_id) - online - set(owner_now) - released)
        if offline:
            problems.append(label + 'CPUs %s are offline in the Boot Kernel; Parker takes online CPUs and offlines '
                            'them itself' % format_cpulist(offline))
    for cpu, name in asked.items():
        owner_after[cpu] = name
    boot_after = (online | released) - set(owner_after)
    taken = sorted(set(owner_after.values()))
    summary = '; '.join('%s takes %s' % (n, format_cpulist([c for c, o in owner_after.items() if o == n]))
                        for n in taken)
    if not boot_after:   # not even force: the Boot Kernel runs this module
        problems.append('the partitions would leave the Boot Kernel with no online CPU (%s)' % summary)
    if request['force']:
        return problems
    groups = _facts.smt_groups(cpu_facts['list'])
    if boot_after:
        whole = [m for m in groups.values() if m <= boot_after]
        need = request['min_housekeeping_cores']
        if len(whole) < need:
            problems.append('the partitions together would leave %d whole online core(s) for housekeeping, fewer '
                            'than min_housekeeping_cores=%d (Boot Kernel CPUs after: %s; %s)'
                            % (len(whole), need, format_cpulist(boot_after) or 'none', summary))
    if not request['allow_smt_split']:
        replaced = set(p['name'] for p in plans if p['action'] == 'replace')
        new_cpus = set(c for c, o in asked.items() if owner_now.get(c) != o or o in replaced)
        for members in sorted(groups.values(), key=min):
            if not members & new_cpus or len(members) < 2:
                continue
            owners = set(owner_after.get(c) or ('the Boot Kernel' if c in boot_after else None) for c in members)
            owners.discard(None)   # an offline thread no one holds runs nothing
            if len(owners) > 1:
                problems.append('the SMT core %s would be split between %s; list whole cores or set '
                                'allow_smt_split=true' % (format_cpulist(members), ' and '.join(sorted(owners))))
    return problems


def cma_problems(cma, node_of, holders, needing):
    """Does the memory asked for fit the Parker CMA area of each partition's first CPU's node? (problems, warnings)

    Every allocation takes whole GiB of the area (its bitmap unit). ``holders`` are [(name, node, bytes)] of
    partitions that keep their memory; ``needing`` [(name, first CPU, bytes)] of those this run gives memory.
    Only what the kernel reported refuses; an area known only from parker_cma= gives warnings.
    """
    problems, warnings = [], []
    unsure = ('; the kernel did not report its Parker CMA areas, so this is only expected from parker_cma=: '
              'the run goes on, and the memory write may fail with ENOMEM')
    by_node = {}
    for name, first, size in needing:
        node = node_of.get(first)
        if node is not None:
            by_node.setdefault(node, []).append((name, first, size))
    for node, asking in sorted(by_node.items()):
        area = _parker.area_of(cma, node)
        firm = cma['known'] and (area is None or area['source'] != 'expected')
        verdict = problems.append if firm else (lambda message: warnings.append(message + unsure))
        if area is not None and area['size'] is None:
            warnings.append('memory: %s comes from node %d\'s Parker CMA area, which the kernel lists without its '
                            'size and parker_cma= does not give: not checked' % (', '.join(a[0] for a in asking), node))
            continue
        if not (area or {}).get('size'):
            for name, first, _size in asking:
                verdict('memory: %s would come from node %d, where its first CPU (%d) is, but node %d has no Parker '
                        'CMA area: %s (areas on nodes: %s)'
                        % (name, node, first, node, _parker.no_area_reason(cma, node),
                           ','.join(str(a['node']) for a in cma['areas'] if a['size']) or 'none'))
            continue
        held = [(name, size) for name, held_node, size in holders if held_node == node]
        used = sum(_memory.cma_units(size) for _name, size in held)
        need = sum(_memory.cma_units(size) for _name, _first, size in asking)
        if used + need > area['size']:
            verdict('memory: node %d\'s Parker CMA area is %s, %s of it held by %s; %s would take %s more (each '
                    'allocation rounded up to the area\'s 1G unit)'
                    % (node, format_size(area['size']), format_size(used), ', '.join(n for n, _s in held) or 'nothing',
                       ', '.join('%s (%s, first CPU %d)' % (n, format_size(s), f) for n, f, s in asking),
                       format_size(need)))
    return problems, warnings


def device_problems(pci, parts, plans, force):
    index = _pci.by_address(pci)
    claimed = _parker.claimed_by({'partitions': list(parts.values())})
    problems, asked = [], {}
    for plan in plans:
        spec = plan['spec']
        if plan['action'] not in BUILD_ACTIONS + ('keep',):
            continue
        own = set() if plan['action'] == 'replace' else set((plan['existing'] or {}).get('devices') or [])
        for bdf in spec['devices']:
            if bdf in asked and asked[bdf] != spec['name']:
                problems.append('device %s is asked for by both %s and %s' % (bdf, asked[bdf], spec['name']))
            asked.setdefault(bdf, spec['name'])
            if bdf in own:
                continue
            dev = index[bdf]
            holder = claimed.get(bdf)
            if holder not in (None, spec['name']):
                problems.append('%s: %s is already claimed by partition %s' % (spec['name'], bdf, holder))
            elif not dev['driver']:
                problems.append('%s: %s has no host driver; Parker bind needs the device bound to its host driver '
                                '(EBUSY otherwise): reattach it with parker.kernel.device_detach state=attached'
                                % (spec['name'], bdf))
            problems.extend('%s: %s' % (spec['name'], p) for p in _ownership.takeover_problems(dev, force))
    return problems


# -- the plan -----------------------------------------------------------------------

def _names_of(devices, pci, previous):
    index = _pci.by_address(pci)
    names = {}
    for bdf in devices:
        dev = index.get(bdf, {})
        names[bdf] = previous.get(bdf) or {'net': dev.get('net', []), 'block': dev.get('block', [])}
    return names


def enomem_hint(cma, node):
    """What an ENOMEM from memory means on ``node``."""
    if cma is None:
        return None
    area = _parker.area_of(cma, node)
    if not area or not area['size']:
        if cma['known']:
            return 'node %d has no Parker CMA area: %s' % (node, _parker.no_area_reason(cma, node))
        return ('node %d has no Parker CMA area as far as parker_cma= says (the kernel did not report its areas; look '
                'for "parker: node %d reservation failed" in dmesg): %s' % (node, node, _parker.no_area_reason(cma, node)))
    return ('node %d has a Parker CMA area of %s; the host may have pinned pages in it (retried after dropping caches '
            'and compacting): retry when the host is quieter, or ask for less' % (node, format_size(area['size'])))


def build_steps(plan, root, node_of, cma, retries):
    """mkdir, cpus, memory, bind in the RFC's order: all of them, or what a killed run left undone."""
    spec, base = plan['spec'], '%s/%s' % (root, plan['name'])
    memory = _steps.write(base + '/memory', format_size(spec['memory']), reclaim=retries,
                          hint=enomem_hint(cma, node_of.get(min(spec['cpus']))) if spec['cpus'] else None)
    steps = []
    if plan['action'] in ('create', 'replace'):   # a replaced partition's rmdir ran first (plan['removals'])
        steps += [_steps.mkdir(base), _steps.write(base + '/cpus', format_cpulist(spec['cpus'])), memory]
        steps += [_steps.write(base + '/bind', bdf) for bdf in spec['devices']]
    elif plan['action'] == 'resume':
        resume = plan['resume']
        if resume['cpus']:
            steps.append(_steps.write(base + '/cpus', format_cpulist(spec['cpus'])))
        if resume['memory']:
            steps.append(memory)
        steps += [_steps.write(base + '/bind', bdf) for bdf in resume['devices']]
    return steps


def repair_steps(drift, memory_facts):
    by_id = dict((b['id'], b) for b in memory_facts.get('blocks') or [])
    steps = []
    for found in drift:
        if found['kind'] == 'cpu_online':
            steps += _cpu.cpu_steps(found['cpus'], 'offline')
        elif found['kind'] == 'memory_online':
            steps += _memory.block_steps(found['blocks'], by_id, 'offline')
    return steps


REMEDY = {
    'device_returned': 'power the partition\'s Application Kernel off, set the partition absent, and build it again',
    'not_answering': 'Parker has no host-side stop: check its console, power it off from inside or reset the host',
    'stopped': 'set replace: true to build it again, or state absent, then started',
    'extra': 'add it to the plan, or power it off from inside and remove it (parker.kernel.partition state=absent)',
    'cmdline': 'reboot into the persisted line first (the cmdline role, cmdline_reboot_ok)',
}


def plan_host(facts, request):
    """The whole host's plan. ``request``: state, partitions (raw dicts), exclusive, replace, force,
    allow_smt_split, min_housekeeping_cores, memory_retries, boot_tokens, hardware, accept_hardware, parker_root.

    Returns {'problems', 'warnings', 'drift', 'status', 'hardware', 'repairs', 'partitions', 'extra',
    'selectors', 'records'}: each partition plan has name, action (create, resume, replace, keep, finish,
    remove, absent), spec, existing, steps, start (boot its Application Kernel in this run) and record.
    """
    state, root = request['state'], request['parker_root']
    parker, cpu_facts, pci = facts['parker'], facts['cpus'], facts['pci']
    parts = dict((p['name'], p) for p in parker['partitions'])
    records, pins = dict(facts['records']), facts['pins']
    names = saved_names(records)
    problems, warnings, drift = [], [], []
    if not parker['present']:
        problems.append('no Parker kernfs at %s (the directory is missing): the Boot Kernel needs CONFIG_PARKER and '
                        'parker_cma= on its command line, without which it never registers the kernfs (see '
                        'parker.kernel.mem_reserve mode=boot)' % root)
    specs, seen = [], {}
    for raw in request['partitions']:
        spec, found = parse_spec(raw, state, cpu_facts, pci, names, pins)
        spec['valid'] = not found
        problems.extend(found)
        if spec['name'] in seen:
            problems.append('partition %s is listed more than once' % spec['name'])
            continue
        seen[spec['name']] = spec
        specs.append(spec)

    plans = []
    for spec in specs:
        part = parts.get(spec['name'])
        plan = {'name': spec['name'], 'spec': spec, 'existing': part, 'steps': [], 'start': False, 'resume': None,
                'record': records.get(spec['name'])}
        if state == 'absent':
            plan['action'] = 'absent' if part is None else 'remove'
            if part is not None and part['online']:
                waited = request.get('poweroff_timeout') or 0
                problems.append('partition %s runs an Application Kernel%s and Parker has no host-side stop: power it '
                                'off from inside (it clears online), then run again'
                                % (spec['name'], ' (online still 1 after poweroff_timeout=%ss)' % waited if waited
                                   else ''))
        elif spec['valid']:
            action, resume, problem = _classify(spec, part, records.get(spec['name']), request['replace'])
            plan['action'], plan['resume'] = action, resume
            if problem:
                problems.append(problem)
            elif part is not None and part['online'] and _left_in_slot(facts['kexec'], part):
                plan['action'] = 'finish'   # a run killed between online and kexec -u left its image in the slot
            plan['start'] = bool(action) and spec['start'] and (
                part is None or not part['online'] or action == 'replace')
            if plan['start']:
                plan['extra'], found, warned = _partition_start.check(spec, facts)
                problems += found
                warnings += warned
        else:
            plan['action'] = None
        plans.append(plan)

    if state != 'absent':
        drift = _host_drift(facts, request, plans, parts)
        for found in drift:
            # A stopped single-use partition is refused by its classification already, with its remedy.
            if found['repair'] == 'refuse' and found['kind'] != 'stopped':
                problems.append('%s: %s' % (found['message'], REMEDY[found['kind']]))
        problems += cpu_problems(cpu_facts, parts, plans, request)
        problems += device_problems(pci, parts, plans, request['force'])
        node_of = dict((c['id'], c['node']) for c in cpu_facts['list'])
        if facts['cma'] is not None:
            building = set(p['name'] for p in plans if p['action'] in BUILD_ACTIONS)
            needing = [(p['name'], min(p['spec']['cpus']), p['spec']['memory']) for p in plans
                       if p['spec']['cpus'] and p['spec'].get('memory') and p['action'] in BUILD_ACTIONS
                       and (p['action'] != 'resume' or p['resume']['memory'])]
            holders = [(part['name'], node_of.get(min(cpus_of(part['cpus']))), part['memory']['size'])
                       for part in parts.values() if part['memory'] and cpus_of(part['cpus'])
                       and (part['name'] not in building or plans_by(plans, part['name'])['action'] == 'resume')]
            refused, warned = cma_problems(facts['cma'], node_of, holders, needing)
            problems += refused
            warnings += warned

    hardware = _hardware(facts, request)
    if hardware['changes'] and not request['accept_hardware'] and state != 'absent':
        problems.append('the hardware changed since the partitions were planned: %s. Re-plan for this host, or set '
                        'accept_hardware: true if the plan still fits' % '; '.join(hardware['changes']))
    status = _drift.status(drift, hardware['changes'])
    if problems and status == _drift.IN_PLAN:
        status = _drift.REFUSED   # nothing drifted, but the plan cannot be applied as it is
    plan = {'state': state, 'root': root, 'problems': problems, 'warnings': warnings, 'drift': drift,
            'status': status, 'hardware': hardware, 'partitions': plans, 'extra': sorted(set(parts) - set(seen)),
            'repairs': [], 'removals': [], 'selectors': pins, 'records': records}
    if problems:
        return plan
    _steps_for(plan, facts, request)
    return plan


def plans_by(plans, name):
    return next(p for p in plans if p['name'] == name)


def _host_drift(facts, request, plans, parts):
    drift = []
    for plan in plans:
        spec, part = plan['spec'], plan['existing']
        if part is None:
            drift.append(_drift.missing(spec['name'], spec['start']))
            continue
        drift += _drift.partition_drift(spec, part, plan['record'], facts['cpus'], facts['memory'], facts['pci'],
                                        facts['health'].get(spec['name']))
        used = (plan['record'] or {}).get('started')
        if spec['start'] and not part['online'] and used:
            found = _drift.stopped(spec['name'])
            if request['replace']:
                found['repair'] = 'repair'
            drift.append(found)
        elif spec['start'] and not part['online']:
            drift.append(_drift.item('not_started', 'partition %s holds its resources but its Application Kernel was '
                                                    'never started' % spec['name'], 'repair', spec['name']))
        if plan['action'] == 'resume':
            drift.append(_drift.item('incomplete', 'partition %s is half-built (a run killed part-way?): %s still to '
                                                   'be written' % (spec['name'], ', '.join(
                                                       k for k in ('cpus', 'memory') if plan['resume'][k])
                                                       + (' devices' if plan['resume']['devices'] else '')),
                                     'repair', spec['name']))
        if plan['action'] == 'finish':
            drift.append(_drift.item('slot_loaded', 'the host\'s kexec slot still holds the image %s was started with '
                                                    '(a run killed before kexec -u); a `systemctl kexec` would boot '
                                                    'the host into it' % spec['name'], 'repair', spec['name']))
    if request['exclusive']:
        listed = set(p['name'] for p in plans)
        drift += [_drift.extra(part) for name, part in sorted(parts.items()) if name not in listed]
    drift += _drift.cmdline_drift(request['boot_tokens'], facts['cmdline'])
    return drift


def _hardware(facts, request):
    now = _drift.hardware_summary(facts['cpus'], facts['memory'], facts['pci'])
    # The record is host_partitions' own: parker.kernel.partition (one partition) neither keeps nor reads it.
    planned = request.get('hardware') or (facts['hardware_record'].get('summary') if request['record_hardware']
                                          else None)
    return {'now': now, 'planned': planned, 'changes': _drift.hardware_changes(planned, now) if planned else []}


def _steps_for(plan, facts, request):
    """Fill in the steps of a plan that passed every check."""
    root, cpu_facts, pci = plan['root'], facts['cpus'], facts['pci']
    records = plan['records']
    if plan['state'] == 'absent':
        for p in plan['partitions']:
            if p['action'] == 'remove':
                p['steps'] = [_steps.rmdir('%s/%s' % (root, p['name']))]
                if _left_in_slot(facts['kexec'], p['existing']) and facts['kexec']['bin']:
                    # Its image is still in the host's only slot (a start killed before kexec -u): clear it too.
                    p['steps'] += [_steps.run([facts['kexec']['bin'], '-u']),
                                   _steps.save(_state.kexec_slot('normal'), {})]
        return
    # Replaced partitions go first, all of them: the checks above counted their CPUs and memory as free.
    plan['removals'] = [_steps.rmdir('%s/%s' % (root, p['name'])) for p in plan['partitions']
                        if p['action'] == 'replace']
    plan['repairs'] = repair_steps([d for d in plan['drift'] if d['repair'] == 'repair'], facts['memory'])
    node_of = dict((c['id'], c['node']) for c in cpu_facts['list'])
    names = saved_names(records)
    all_pins = {}
    present = set(d['address'] for d in pci['devices'])
    for p in plan['partitions']:
        all_pins.update(selector_pins(p['spec']['selectors'], pci, names))
    # A pin stays as first resolved; only selectors without one (or whose device is gone) get one now.
    all_pins.update((sel, bdf) for sel, bdf in plan['selectors'].items() if bdf in present or sel not in all_pins)
    if all_pins != plan['selectors']:
        # Kept past rmdir, for the boot (/run): the device may come back under another name.
        plan['repairs'].insert(0, _steps.save(_state.SELECTORS, all_pins))
    plan['selectors'] = all_pins
    topology = facts['topology']
    for p in plan['partitions']:
        spec, part = p['spec'], p['existing']
        if p['action'] not in BUILD_ACTIONS:
            continue
        steps = []
        # The record (saved by the engine before these steps) names the devices first: bind takes net=/block=
        # names away from the Boot Kernel, and a run killed after it must still find them by those names.
        previous = {} if p['action'] == 'replace' else (records.get(p['name']) or {})
        p['record'] = dict(previous, cpus=format_cpulist(spec['cpus']), memory=spec['memory'],
                           devices=spec['devices'], names=_names_of(spec['devices'], pci, names), started=False)
        new_cpus = spec['cpus'] - (cpus_of(part['cpus']) if part and p['action'] == 'resume' else set())
        cache = _state.refreshed_topology(topology, cpu_facts['list'], new_cpus)
        if cache is not None:
            steps.append(_steps.save(_state.CPU_TOPOLOGY, cache))
            topology = cache
        p['steps'] = steps + build_steps(p, root, node_of, facts['cma'], request['memory_retries'])


def _left_in_slot(kexec, part):
    """True when the normal kexec slot still holds the image this partition was started with."""
    if not kexec['loaded']:
        return False
    return ('parker=%s' % part['control_structure']) in (kexec['record'].get('cmdline') or '').split()


def conflicts(partitions):
    """Problems between one host's partitions: a repeated name, a CPU or a device asked twice (pure).

    ``partitions`` are dicts with name, cpus (cpulist) and devices (PCI addresses), as the modules
    report them, so selectors that name the same device (net=eth2, 0000:00:07.0) are caught too.
    """
    problems, owners = [], {}
    names = [p.get('name') for p in partitions]
    for name in sorted(set(n for n in names if names.count(n) > 1)):
        problems.append('partition %s is listed %d times' % (name, names.count(name)))
    for part in partitions:
        cpus = cpus_of(part.get('cpus'))
        for kind, items in (('CPU', sorted(cpus)), ('device', sorted(part.get('devices') or []))):
            for item in items:
                first = owners.setdefault((kind, item), part.get('name'))
                if first != part.get('name'):
                    problems.append('%s %s is asked for by both %s and %s' % (kind, item, first, part.get('name')))
    return problems
