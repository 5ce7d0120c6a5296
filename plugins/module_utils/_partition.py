# -*- coding: utf-8 -*-
# Copyright (c) parker.kernel contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# This module util is PRIVATE to the parker.kernel collection.
# It can have breaking changes at any time.

"""The Parker partition lifecycle on one host: facts, plan, apply, verify, health (parker-interface.md §2.3-§2.8).

One engine serves parker.kernel.host_partitions (the host's whole set in one call)
and parker.kernel.partition (one partition, the others left alone):

1. lock: one partition operation at a time per host (one kexec slot, one Parker mutex);
2. facts, read once (``gather_host``), after mounting the kernfs if a Parker Boot
   Kernel left it unmounted; running Application Kernels are probed;
3. the plan (_partition_plan.plan_host, pure): every problem is refused here,
   before the first write;
4. apply through the Transaction: repairs of drift, then each partition built and
   started in turn, each a unit of its own (a failure undoes that partition only:
   the ones before it may run an Application Kernel, which Parker cannot stop);
5. verify once against the kernel, probe what was started, report.

In check mode step 4 records what it would do and writes nothing.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import errno
import fcntl
import os
import time

from ansible_collections.parker.kernel.plugins.module_utils._cpulist import format_cpulist, cpus_of
from ansible_collections.parker.kernel.plugins.module_utils._cmdline import format_memmap
from ansible_collections.parker.kernel.plugins.module_utils._common import Refused, diff_of
from ansible_collections.parker.kernel.plugins.module_utils._hostio import ApplyError
from ansible_collections.parker.kernel.plugins.module_utils import _drift, _facts, _health, _kexec, _parker, \
    _partition_plan, _partition_start, _state, _steps

# What a started result can say about the instance's CPUs: the host sees none of it.
INSTANCE_CPUS_NOTE = ('not known from the host: the kernfs shows only the control page\'s address, not which CPUs '
                      'the Application Kernel brought up, and online=1 is set at the end of its PCI scan, before '
                      'timers, network or init; only the health probe at its own address says it works')
LOCK_WAIT = 600       # seconds to wait for another partition operation on this host
RUNNING_PROBE = 10    # seconds an Application Kernel that already runs gets to answer (a lost ping is no outage)


# -- locking and mounting ----------------------------------------------------------

def _lock(io, txn, root):
    """Serialise partition operations on this host (one kexec slot, one global Parker mutex).

    An flock on the kernfs root itself (before it is mounted, on its mount point): nothing is written
    to take it, and there is nothing to serialise where the kernfs is missing (the request is refused then).
    """
    path = io.path(root)
    if not os.path.isdir(path):
        return None
    handle = os.open(path, os.O_RDONLY)
    # Check mode shares the lock: it writes nothing, but must not read a partition half-built by another run.
    mode = fcntl.LOCK_SH if txn.check_mode else fcntl.LOCK_EX
    deadline = time.time() + LOCK_WAIT
    while True:
        try:
            fcntl.flock(handle, mode | fcntl.LOCK_NB)
            return handle
        except (IOError, OSError):
            if time.time() > deadline:
                os.close(handle)
                raise Refused('another parker.kernel partition operation holds the lock on %s' % root)
            time.sleep(1)


def _same_dir(handle, path):
    """Whether the open ``handle`` is the directory at ``path`` (flock conflicts between our own handles)."""
    if handle is None or not os.path.isdir(path):
        return False
    held, now = os.fstat(handle), os.stat(path)
    return (held.st_dev, held.st_ino) == (now.st_dev, now.st_ino)


def _mount(request, io, txn, parker):
    """Mount the kernfs when the kernel has it and nothing is mounted at the root: a real Boot Kernel
    leaves /sys/fs/parker an empty directory until someone does. Returns (facts to plan with, mounted)."""
    root = request['parker_root']
    if not parker['present'] or parker['mounted']:
        return parker, False
    if not parker['filesystem_available']:
        raise Refused('nothing is mounted at %s and this kernel has no parker filesystem (not in /proc/filesystems, '
                      'no CONFIG_PARKER=y, no mount.parker helper): boot a Parker Boot Kernel' % root)
    if not request['mount_kernfs']:
        raise Refused('nothing is mounted at %s (a Parker Boot Kernel does not mount its kernfs at boot) and '
                      'mount_kernfs is false: mount it (mount -t parker none %s) or set mount_kernfs: true'
                      % (root, root))
    # No undo: the mount holds nothing itself, and unmounting again would hide partitions the kernel holds.
    txn.run(_parker.mount_argv(root))
    txn.commit()   # done, whatever the plan then refuses
    if txn.check_mode:
        return parker, True
    after = _parker.parker_facts(io, root)
    if not after['mounted']:
        raise ApplyError(' '.join(_parker.mount_argv(root)), None, 'mount returned but /proc/mounts shows nothing '
                         'mounted at %s' % root)
    return after, True


# -- facts --------------------------------------------------------------------------

def gather_host(io, runner, request, parker):
    """Everything plan_host reads, in one pass. ``parker`` is the kernfs view after mounting."""
    log = _parker.kernel_log(io)
    files = set()
    for raw in request['partitions']:
        files.update(f for f in (raw.get('kernel'), raw.get('initrd')) if f)
    # Records are kept only for partitions the mounted kernfs has (one removed outside the collection, or never
    # built by a failed run, goes with the next save: its names would shadow what the Boot Kernel calls those
    # devices now); the writer pids are spent.
    live = set(p['name'] for p in parker['partitions'])
    records = dict((n, dict((k, v) for k, v in r.items() if k != 'blocked_writer'))
                   for n, r in _state.load(io, _state.PARTITIONS).items() if n in live or not parker['mounted'])
    facts = {
        'parker': parker,
        'cpus': _facts.cpu_facts(io),
        'pci': _facts.pci_facts(io),
        'memory': _facts.memory_facts(io),
        'cma': _parker.cma_areas(io, log),   # read on every run, never cached: physical KASLR moves the areas
        'tsc_khz': _parker.tsc_khz(log),
        'kexec': _kexec.slot_facts(io, 'normal', files),
        'records': records,
        'pins': _state.load(io, _state.SELECTORS),
        'topology': _state.load(io, _state.CPU_TOPOLOGY),
        'cmdline': _facts.running_cmdline(io),
        'machine': os.uname()[4],
        'hardware_record': _state.load(io, _state.HARDWARE),
        'health': {},
    }
    if request['health_check'] and request['state'] != 'absent':
        running = set(p['name'] for p in parker['partitions'] if p['online'])
        probes = dict((raw['name'], _health.target(raw)) for raw in request['partitions']
                      if raw.get('name') in running and _health.target(raw))
        facts['health'] = _health.probe_all(io, runner, probes, RUNNING_PROBE)
    return facts


def _wait_for_poweroff(io, txn, request, parker):
    """With state absent: wait up to poweroff_timeout for the listed partitions told to power off to clear
    online, reading that one file in a loop (never the whole kernfs). Returns the kernfs view to plan with.
    Check mode does not wait: with a timeout it plans the rmdir that would follow."""
    timeout = request['poweroff_timeout'] or 0
    listed = set(raw.get('name') for raw in request['partitions'])
    running = [p['name'] for p in parker['partitions'] if p['online'] and p['name'] in listed]
    if not running or timeout <= 0:
        return parker
    if txn.check_mode:
        return dict(parker, partitions=[dict(p, online=False) if p['name'] in running else p
                                        for p in parker['partitions']])
    deadline = time.time() + timeout
    while running and time.time() < deadline:
        time.sleep(1)
        running = [n for n in running if _parker.online_of(io, request['parker_root'], n) is not False]
    return _parker.parker_facts(io, request['parker_root'])


# -- the run ------------------------------------------------------------------------

def run_host(io, txn, request):
    """Plan, apply and verify ``request`` (see _partition_plan.plan_host) on this host; returns the result."""
    # The lock is taken before the kernfs is read: a run killed part-way may leave its module still
    # finishing on the host, and the plan must see what that one did.
    locks = [_lock(io, txn, request['parker_root'])]
    try:
        return _run(io, txn, txn.probe, request, locks)
    except ApplyError as exc:
        if exc.errno == errno.ENOENT and exc.hint is None:
            exc.hint = _parker.missing_hint(io, request['parker_root'], exc.action)
        raise
    finally:
        for lock in locks:
            if lock is not None:
                os.close(lock)


def _run(io, txn, runner, request, locks):
    root = request['parker_root']
    # parker_facts reads nothing from the kernfs while a start's online writer blocks (a show handler may
    # wait on the same mutex); every write would hang behind it, so nothing is tried.
    parker = _parker.parker_facts(io, root)
    if parker['blocked_starts']:
        raise Refused(_parker.blocked_message(parker['blocked_starts']))
    parker, mounting = _mount(request, io, txn, parker)
    warnings = []
    if mounting and txn.check_mode:
        warnings.append('would mount %s (mount -t parker none %s): nothing is mounted there, so this plan is for an '
                        'empty kernfs; partitions the kernel still holds reattach when it is mounted' % (root, root))
    if parker['mounted'] and not any(_same_dir(lock, io.path(root)) for lock in locks):
        # The lock taken first may be the mount point under the kernfs (this run, or one that waited
        # on it, found nothing mounted): the mounted root is what every other run locks.
        locks.append(_lock(io, txn, root))
    if request['state'] == 'absent':
        parker = _wait_for_poweroff(io, txn, request, parker)
    facts = gather_host(io, runner, request, parker)
    plan = _partition_plan.plan_host(facts, request)
    warnings += plan['warnings']
    summary = {'status': plan['status'], 'drift': plan['drift'], 'hardware': plan['hardware'],
               'mounted_kernfs': mounting}
    if plan['problems']:
        problems = plan['problems']
        raise Refused(problems[0] if len(problems) == 1 else 'refused, nothing was changed: ' + '; '.join(problems),
                      problems=problems, **summary)
    before = _host_view(facts['parker']['partitions'], facts)
    reports = _apply(io, txn, runner, request, plan, facts)
    after = _verify(io, txn, request, plan, facts, reports)
    if request['record_hardware'] and not txn.check_mode and request['state'] != 'absent' and \
            facts['hardware_record'].get('summary') != plan['hardware']['now']:
        txn.save_json(_state.HARDWARE, {'summary': plan['hardware']['now']})
    for report in reports:
        report.pop('view', None)
        report.pop('started_now', None)
    result = dict(summary, partitions=reports, warnings=warnings, extra=plan['extra'],
                  diff=diff_of('%s (%s)' % (root, request['state']), before, after))
    if not txn.check_mode and request['state'] != 'absent':
        # Applied and verified: what drifted was repaired (what could not be would have been refused above), and
        # hardware that changed was accepted.
        if plan['drift']:
            result['repaired'] = [d['message'] for d in plan['drift']]
        result['status'], result['drift'] = _drift.IN_PLAN, []
    return result


def _apply(io, txn, runner, request, plan, facts):
    """Repairs, then each partition as a unit: build, record, start. Returns the per-partition reports."""
    _steps.apply(txn, plan['repairs'])
    _steps.verify(io, txn, plan['repairs'], 'repairs')
    txn.commit()
    records = dict(facts['records'])
    if plan['removals']:
        # Every replaced partition goes before anything is built: the plan counted their CPUs and memory as free.
        _steps.apply(txn, plan['removals'])
        for p in plan['partitions']:
            if p['action'] == 'replace':
                records.pop(p['name'], None)
        txn.save_json(_state.PARTITIONS, records)
        txn.commit()
    done, reports = [], []
    for p in plan['partitions']:
        try:
            reports.append(_apply_one(io, txn, request, p, facts, records, plan['selectors']))
        except ApplyError as exc:
            if done:
                exc.detail += '; kept, as built before it: %s' % ', '.join(done)
            raise
        txn.commit()
        if p['action'] not in ('keep', 'absent'):
            done.append('%s (%s)' % (p['name'], 'started' if p['start'] else p['action']))
    targets = dict((p['name'], p['spec']['health']) for p in plan['partitions'] if p['spec']['health'])
    started = dict((r['name'], targets[r['name']]) for r in reports if r.get('started_now') and r['name'] in targets)
    if started and request['health_check'] and not txn.check_mode:
        found = _health.probe_all(io, runner, started, request['health_timeout'])
        for report in reports:
            if report['name'] in found:
                report['healthy'] = found[report['name']]['healthy']
                report['health'] = found[report['name']]['detail']
        silent = sorted(n for n, h in found.items() if not h['healthy'])
        if silent:
            failure = ApplyError('health check', None, 'started, but %s after %d s: %s' % (
                'does not answer' if len(silent) == 1 else 'do not answer', request['health_timeout'],
                '; '.join('%s at %s' % (n, found[n]['detail']) for n in silent)))
            failure.hint = ('online is set at the end of the Application Kernel\'s PCI scan, before its network is '
                            'up: check its console and its ip= line; Parker cannot stop it from the host')
            failure.left_in_place = True
            raise failure
    for report in reports:
        health = facts['health'].get(report['name'])
        if health and report.get('healthy') is None:
            report['healthy'], report['health'] = health['healthy'], health['detail']
    return reports


def _apply_one(io, txn, request, p, facts, records, pins):
    name, spec = p['name'], p['spec']
    base = '%s/%s' % (request['parker_root'], name)
    if p['action'] in _partition_plan.BUILD_ACTIONS:
        # Saved first, and rolled back with the mkdir: a failed run leaves no record of a partition the kernel
        # does not hold, and a run killed after bind still finds the devices by their names.
        records[name] = dict(p['record'], started=bool((records.get(name) or {}).get('started'))
                             and p['action'] == 'resume')
        txn.save_json(_state.PARTITIONS, records, undo=p['action'] != 'resume')
    _steps.apply(txn, p['steps'])
    if p['action'] in ('remove', 'absent'):
        if records.pop(name, None) is not None:
            txn.save_json(_state.PARTITIONS, records)
        return _report(p, None, started=False, changed=bool(p['steps']))
    part = p['existing']
    if p['action'] in _partition_plan.BUILD_ACTIONS:
        if txn.check_mode:
            part = _predicted(p, part)
        else:
            part = _parker.read_partition(io, request['parker_root'], name)
            _verify_built(part, spec)
            blocks = _offlined_blocks(io, facts['memory'], part['memory'])
            if blocks != records[name].get('blocks'):
                records[name] = dict(records[name], blocks=blocks)
                txn.save_json(_state.PARTITIONS, records)
    started_now = False
    if p['start']:
        def note_writer(pid):
            # Recorded as the writer starts, before the wait: the partition is used from here on (single-use),
            # even if this run dies, and a run killed while it waits leaves the next one a pid to check. A run
            # killed earlier (during the kexec load) has not used it, and the next run starts it.
            records[name] = dict(records.get(name) or {}, started=True, blocked_writer=pid)
            txn.save_json(_state.PARTITIONS, records)
        view = part if part is not None else _predicted(p, None)
        _partition_start.start(io, txn, spec, base, view, p['extra'], facts['machine'], request['start_timeout'],
                               note_writer)
        started_now = True
        records[name] = dict((k, v) for k, v in (records.get(name) or {}).items() if k != 'blocked_writer')
        records[name]['started'] = True
        txn.save_json(_state.PARTITIONS, records)
        if not txn.check_mode:
            part = dict(part, online=True)   # start() verified online reads 1
    elif p['action'] == 'finish':
        _partition_start.unload(io, txn)
        records[name] = dict(records.get(name) or {}, started=True)
        txn.save_json(_state.PARTITIONS, records)
    report = _report(p, part, started=started_now or bool(part and part['online']),
                     changed=bool(p['steps']) or started_now or p['action'] == 'finish', pins=pins)
    report['started_now'] = started_now
    return report


def _predicted(p, part):
    """What check mode says a partition will hold: the kernel picks the control page and the memory's base."""
    spec = p['spec']
    # The kernel picks the base; a replaced partition's old memory says nothing about its new one.
    held = (part or {}).get('memory') if p['action'] != 'replace' else None
    memory = held or {'size': spec['memory'], 'start': 0}
    return {'name': p['name'], 'cpus': format_cpulist(spec['cpus']), 'memory': memory, 'devices': spec['devices'],
            'online': False, 'control_structure': (part or {}).get('control_structure') or '0x0',
            'id': (part or {}).get('id'), 'predicted': part is None}


def _verify_built(part, spec):
    if part is None:
        raise ApplyError('verify partition %s' % spec['name'], None, 'the partition directory is missing after mkdir')
    problems = []
    if cpus_of(part['cpus']) != spec['cpus']:
        problems.append('cpus reads %r' % part['cpus'])
    if not part['memory'] or part['memory']['size'] != spec['memory']:
        problems.append('memory reads %r' % (part['memory'],))
    if sorted(part['devices']) != sorted(spec['devices']):
        problems.append('devices/ lists %s' % ', '.join(part['devices']))
    if problems:
        raise ApplyError('verify partition %s' % spec['name'], None, '; '.join(problems))


def _offlined_blocks(io, memory_facts, memory):
    """Memory blocks inside the partition's memory that the kernel took out of the Boot Kernel (a stock kernel's
    hotplug, as the emulation does it); none on a Parker kernel, whose CMA pages stay in online blocks."""
    size = memory_facts.get('block_size')
    if not size or not memory:
        return []
    first, last = memory['start'] // size, (memory['start'] + memory['size'] - 1) // size
    return [b for b in range(first, last + 1)
            if io.read('%s/memory%d/state' % (_facts.MEM_ROOT, b)) == 'offline']


def _verify(io, txn, request, plan, facts, reports):
    """Read the kernel once after the whole run and compare it with the plan; returns the diff's after view."""
    if txn.check_mode:
        after = [r['view'] for r in reports if r.get('view')]
        kept = [p for p in facts['parker']['partitions'] if p['name'] not in set(r['name'] for r in reports)]
        return _host_view(kept + after, facts, predicted=True)
    parker = _parker.parker_facts(io, request['parker_root'])
    now = dict((p['name'], p) for p in parker['partitions'])
    online = _facts.cpu_state(io)['online']
    problems = []
    for report in reports:
        part = now.get(report['name'])
        if request['state'] == 'absent':
            if part is not None:
                problems.append('%s is still there' % report['name'])
            elif report.get('returned'):
                back = cpus_of(report['returned']['cpus']) - online
                if back:
                    problems.append('CPUs %s of %s did not come back online' % (format_cpulist(back), report['name']))
            continue
        if part is None:
            problems.append('%s is missing' % report['name'])
            continue
        if report['started'] and not part['online']:
            problems.append('%s reads online 0' % report['name'])
        taken = cpus_of(part['cpus']) & online
        if taken:
            problems.append('CPUs %s of %s are online in the Boot Kernel' % (format_cpulist(taken), report['name']))
    if problems:
        raise ApplyError('verify %s' % request['parker_root'], None, '; '.join(problems))
    return _host_view(parker['partitions'], dict(facts, cpus=dict(facts['cpus'], online=format_cpulist(online)),
                                                 kexec=_facts.kexec_facts(io)))


# -- reports --------------------------------------------------------------------------

def _describe(part, drivers=None):
    memory = part.get('memory') or {}
    devices = ','.join('%s(%s)' % (d, (drivers or {}).get(d) or '-') for d in part.get('devices') or []) or '-'
    return '%s: cpus=%s memory=%s devices=%s online=%s' % (
        part['name'], part.get('cpus') or '-',
        format_memmap(memory['size'], memory['start']) if memory else '-', devices,
        'unknown' if part.get('predicted') else bool(part.get('online')))


def _host_view(partitions, facts, predicted=False):
    """The host's partition view for --diff: the Boot Kernel's CPUs and kexec slot, each partition's CPUs,
    memory range, devices with their drivers, and online."""
    drivers = dict((d['address'], d['driver']) for d in facts['pci']['devices'])
    lines = ['boot kernel: cpus online %s, kexec slot %s' % (
        facts['cpus']['online'] if not predicted else _predicted_online(partitions, facts),
        'loaded' if facts['kexec']['loaded'] and not predicted else 'empty')]
    lines += [_describe(p, drivers) for p in sorted(partitions, key=lambda p: p['name'])]
    return '\n'.join(lines)


def _predicted_online(partitions, facts):
    online = cpus_of(facts['cpus']['online'])
    for part in partitions:
        online -= cpus_of(part['cpus'])
    return format_cpulist(online)


def _report(p, part, started, changed, pins=None):
    report = {'name': p['name'], 'action': p['action'], 'changed': changed, 'started': started}
    if part is None:
        old = p['existing']
        report['returned'] = ({'cpus': old['cpus'], 'memory': old['memory'], 'devices': old['devices']}
                              if old is not None else None)
        return report
    memory = part.get('memory') or {}
    report.update(cpus=part.get('cpus'), devices=part.get('devices'), memory=memory or None,
                  memmap=format_memmap(memory['size'], memory['start']) if memory else None,
                  control_structure=part.get('control_structure'), online=bool(part.get('online')),
                  selectors=dict((sel, (pins or {})[sel]) for sel in p['spec'].get('selectors') or []
                                 if sel in (pins or {})),
                  healthy=None, health=None, view=part)
    if started:
        # online is not health: say what is not known rather than imply every CPU runs the instance.
        report['instance_cpus'] = None
        report['instance_cpus_note'] = INSTANCE_CPUS_NOTE
    return report


# -- the modules ----------------------------------------------------------------------

# Options parker.kernel.partition and parker.kernel.host_partitions share (doc fragment attributes.PARTITION).
PARTITION_ARGUMENT_SPEC = dict(
    console=dict(type='str'),
    root=dict(type='str'),
    cmdline=dict(type='list', elements='str', default=[]),
    nokaslr=dict(type='bool', default=True),
    tsc_early_khz=dict(type='str', default='auto'),
    mount_kernfs=dict(type='bool', default=True),
    poweroff_timeout=dict(type='int', default=0),
    start_timeout=dict(type='int', default=300),
    replace=dict(type='bool', default=False),
    memory_retries=dict(type='int', default=3),
    min_housekeeping_cores=dict(type='int', default=1),
    allow_smt_split=dict(type='bool', default=False),
)

PARTITION_KEYS = ('name', 'cpus', 'memory', 'devices', 'kernel', 'initrd', 'console', 'root', 'ip', 'cmdline',
                  'nokaslr', 'tsc_early_khz')


def _request(params, partitions, **overrides):
    request = dict((k, params.get(k)) for k in (
        'state', 'replace', 'force', 'allow_smt_split', 'min_housekeeping_cores', 'memory_retries', 'start_timeout',
        'poweroff_timeout', 'mount_kernfs', 'parker_root'))
    request.update(partitions=partitions, exclusive=False, boot_tokens=[], hardware=None, accept_hardware=False,
                   record_hardware=False, health_check=False, health_timeout=0)
    request.update(overrides)
    return request


def run_partition(params, io, txn):
    """parker.kernel.partition: one partition through the host engine, the host's other partitions left alone."""
    result = run_host(io, txn, _request(params, [dict((k, params.get(k)) for k in PARTITION_KEYS)]))
    report = result['partitions'][0]
    diff = result['diff']
    report.pop('action', None)
    report.pop('healthy', None)
    report.pop('health', None)
    report.update(mounted_kernfs=result['mounted_kernfs'], warnings=result['warnings'], diff=diff)
    return report


def run_host_partitions(params, io, txn):
    """parker.kernel.host_partitions: the host's whole set of partitions in one call."""
    defaults = dict((k, params.get(k))
                    for k in ('kernel', 'initrd', 'console', 'root', 'cmdline', 'nokaslr', 'tsc_early_khz'))
    partitions = []
    for raw in params['partitions']:
        merged = dict((k, v) for k, v in raw.items() if v is not None)
        for key, value in defaults.items():
            if key == 'cmdline':
                merged['cmdline'] = list(value or []) + list(raw.get('cmdline') or [])
            elif merged.get(key) in (None, '') and value not in (None, ''):
                merged[key] = value
        partitions.append(merged)
    request = _request(params, partitions, exclusive=params['exclusive'], boot_tokens=params['boot_tokens'],
                       hardware=params['hardware'], accept_hardware=params['accept_hardware'], record_hardware=True,
                       health_check=params['health_check'], health_timeout=params['health_timeout'])
    try:
        result = run_host(io, txn, request)
    except Refused as exc:
        # verify.yml reads the status of a refused host too, and writes its metrics.
        if 'status' in exc.details:
            exc.details['metrics'] = _drift.metrics(exc.details['status'], exc.details['drift'], [], int(time.time()))
        raise
    result['metrics'] = _drift.metrics(result['status'], result['drift'], result['partitions'], int(time.time()))
    return result
