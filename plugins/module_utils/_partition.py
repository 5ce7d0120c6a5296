# -*- coding: utf-8 -*-
# Copyright (c) parker.kernel contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# This module util is PRIVATE to the parker.kernel collection.
# It can have breaking changes at any time.

"""The Parker partition lifecycle (parker-interface.md §2.3-§2.8), for parker.kernel.partition.

Order the RFC imposes: mkdir, cpus (the kernel offlines them), memory (needs
cpus), bind (the device must still be bound to its host driver), then a normal
kexec load placed inside the partition's memory, then a write to online that
blocks until the Application Kernel reports itself up. There is no host-side
stop; rmdir only after the Application Kernel shut itself down. The sharp
edges, handled here: a rewritten or malformed cpus leaks CPUs (so a live
partition's resources are never rewritten), one kexec slot (starts are
serialised under a host lock and the slot is cleared afterwards), and a
partition is single-use.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import errno
import fcntl
import os
import re
import time

from ansible_collections.parker.kernel.plugins.module_utils._cpulist import parse_cpus, format_cpulist, CpulistError
from ansible_collections.parker.kernel.plugins.module_utils._cmdline import memparse, format_memmap, format_size, SizeError
from ansible_collections.parker.kernel.plugins.module_utils._common import Refused, refuse_all, diff_of
from ansible_collections.parker.kernel.plugins.module_utils._hostio import ApplyError
from ansible_collections.parker.kernel.plugins.module_utils._render import app_kernel_tokens, RenderError
from ansible_collections.parker.kernel.plugins.module_utils import _cpu, _facts, _kexec, _memory, _ownership, _parker, _pci

PARTITION_STATE = _facts.PARTITION_STATE
SELECTOR_STATE = _parker.SELECTOR_STATE
SYSFS_AREA = _parker.SYSFS_CMA + '/parker%d'
OFF = ('', 'off', 'false', 'no', 'none', '0')
# What a started result can say about the instance's CPUs: the host sees none of it.
INSTANCE_CPUS_NOTE = ('not known from the host: the kernfs shows only the control page\'s address, not which CPUs '
                      'the Application Kernel brought up, and online=1 is set at the end of its PCI scan, before '
                      'timers, network or init; the partitions role\'s health check is what says it works')
MAX_CPUS, MAX_DEVICES = 512, 256
LOCK_WAIT = 600  # seconds to wait for another partition operation on this host
_NAME = re.compile(r'^[A-Za-z0-9][A-Za-z0-9_.-]*$')


def _find(parker, name):
    return next((p for p in parker['partitions'] if p['name'] == name), None)


def pinned_selectors(selectors, pci, pins):
    """The request with net=/block= selectors an earlier run resolved replaced by that PCI address (pure).

    A device handed back by rmdir is re-probed and may come back under another name (eth2, then
    renamed by udev); the inventory's selector keeps meaning the address it meant the first time.
    """
    present = set(d['address'] for d in pci['devices'])
    return [pins[str(sel).strip()] if pins.get(str(sel).strip()) in present else sel for sel in selectors]


def selector_pins(selectors, pci, names):
    """{selector: address} for each net=/block= selector of the request that names one device (pure)."""
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


def _request(params, cpu_facts, pci, saved, pins=None):
    """Parse and resolve the requested resources (pure)."""
    try:
        cpus = parse_cpus(params['cpus'], max(parse_cpus(cpu_facts['possible'])))
    except (CpulistError, ValueError) as exc:
        raise Refused('cpus: %s' % exc)
    try:
        memory = memparse(params['memory'])
    except SizeError as exc:
        raise Refused('memory: %s' % exc)
    selectors = pinned_selectors(params['devices'], pci, pins or {})
    devices = _pci.resolve_devices(selectors, pci['devices'], saved) if selectors else []
    return cpus, memory, devices


def saved_names(saved):
    """{bdf: {'net': [...], 'block': [...]}} recorded for every partition: net=/block= selectors keep
    finding a device after bind took its interface or disk away from the Boot Kernel."""
    names = {}
    for record in saved.values():
        names.update(record.get('names') or {})
    return names


def _names_of(devices, pci, previous):
    index = _pci.by_address(pci)
    names = {}
    for bdf in devices:
        dev = index.get(bdf, {})
        names[bdf] = previous.get(bdf) or {'net': dev.get('net', []), 'block': dev.get('block', [])}
    return names


def parse_preceding(entries, cpu_facts, name):
    """The partitions a run brings up on this host before partition ``name``: [{'name', 'cpus', 'memory'}]
    with CPUs as a set and memory in bytes. One that does not parse is its own call's refusal, and a
    repeat of ``name`` is the conflict check's."""
    last_cpu = max(parse_cpus(cpu_facts['possible']))
    parsed = []
    for entry in entries or []:
        if entry.get('name') == name or entry.get('cpus') is None or entry.get('memory') is None:
            continue
        try:
            parsed.append({'name': entry['name'], 'cpus': parse_cpus(entry['cpus'], last_cpu),
                           'memory': memparse(entry['memory'])})
        except (CpulistError, SizeError, ValueError):
            continue
    return parsed


def _after_preceding(cpu_facts, claimed_cpus, preceding, parker):
    """The Boot Kernel's CPUs once the run's earlier partitions hold theirs (pure).

    Their CPUs are offline and claimed; CPUs an existing one holds but will no longer ask for
    (it is replaced) are back. Returns (cpu_facts, claimed_cpus, {cpu: earlier partition taking it}).
    """
    held = dict((p['name'], parse_cpus(p['cpus']) if p['cpus'] else set()) for p in parker['partitions'])
    released, taken_by = set(), {}
    for other in preceding:
        released |= held.get(other['name'], set()) - other['cpus']
        for cpu in other['cpus']:
            taken_by.setdefault(cpu, other['name'])
    still_claimed = claimed_cpus - released
    taken_by = dict((cpu, who) for cpu, who in taken_by.items() if cpu not in still_claimed)
    if not taken_by and not released:
        return cpu_facts, claimed_cpus, taken_by
    cpus = [dict(c, online=(c['online'] or c['id'] in released) and c['id'] not in taken_by)
            for c in cpu_facts['list']]
    return dict(cpu_facts, list=cpus), still_claimed | set(taken_by), taken_by


def cma_problems(name, cpus, memory, cpu_facts, parker, preceding, cma):
    """Does the partition's memory fit the Parker CMA area it is taken from (pure)? Returns (problems, warnings).

    The area is that of the node of the partition's first CPU (§2.3), and every allocation
    uses whole GiB of it. Partitions held now and the run's earlier ones count against it.
    ``cma`` is _parker.cma_areas(): only what the kernel reported refuses; an area known only
    from parker_cma= (the kernel did not say) gives warnings instead.
    """
    node_of = dict((c['id'], c['node']) for c in cpu_facts['list'])
    node = node_of.get(min(cpus))
    if node is None:
        return [], []
    area = _parker.area_of(cma, node)
    size = (area or {}).get('size') or 0
    firm = cma['known'] and (area is None or area['source'] != 'expected')
    unsure = ('; the kernel did not report its Parker CMA areas, so this is only expected from parker_cma=: '
              'the run goes on, and the memory write may fail with ENOMEM')

    def verdict(message):
        return ([message], []) if firm else ([], [message + unsure])
    if area is not None and area['size'] is None:
        return [], ['memory: %s comes from node %d\'s Parker CMA area, which the kernel lists (%s) without its size '
                    'and parker_cma= does not give: not checked' % (name, node, SYSFS_AREA % node)]
    if not size:
        return verdict('memory: %s would come from node %d, where its first CPU (%d) is, but node %d has no Parker CMA '
                       'area: %s (areas on nodes: %s)'
                       % (name, node, min(cpus), node, _parker.no_area_reason(cma, node),
                          ','.join(str(a['node']) for a in cma['areas'] if a['size']) or 'none'))
    users = {}  # partition name -> (how the message names it, bytes)
    for part in parker['partitions']:
        held = parse_cpus(part['cpus']) if part['cpus'] else set()
        if part['name'] != name and part['memory'] and held and node_of.get(min(held)) == node:
            users[part['name']] = (part['name'], part['memory']['size'])
    for other in preceding:
        # One that exists but holds no memory yet (a run killed part-way) takes it during this run.
        if other['name'] not in users and other['cpus'] and node_of.get(min(other['cpus'])) == node:
            users[other['name']] = ('%s (earlier in this run)' % other['name'], other['memory'])
    users = [users[n] for n in sorted(users)]
    used = sum(_memory.cma_units(size) for _label, size in users)
    need = _memory.cma_units(memory)
    if used + need <= size:
        return [], []
    return verdict('memory: %s comes from node %d\'s Parker CMA area (its first CPU, %d, is on node %d) and takes %s '
                   'of it (%s rounded up to the area\'s 1G unit); the area is %s and %s of it is held by %s'
                   % (name, node, min(cpus), node, format_size(need), format_size(memory), format_size(size),
                      format_size(used), ', '.join(n for n, _s in users) or 'nothing'))


def enomem_hint(cma, node):
    """What an ENOMEM from memory means on ``node`` (pure)."""
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


def _cpu_problems(cpu_facts, claimed_cpus, request):
    try:
        _cpu.plan_cpu_change(cpu_facts, claimed_cpus, request)
    except Refused as exc:
        return exc.details.get('problems') or [exc.msg]
    return []


def plan_present(params, cpu_facts, pci, parker, claimed_cpus, claimed_devices, names=None, preceding=(),
                 cma=None, pins=None):
    """Validate a new partition, or compare an existing one. Returns the plan dict (pure).

    ``preceding`` (parse_preceding) are partitions the same run creates on this host first: checked
    as if they already held their CPUs and memory, so host-wide limits hold for the whole run.
    ``cma`` (_parker.cma_areas(), None when nothing says anything) bounds the memory; ``pins``
    are the selectors earlier runs resolved. The plan's ``warnings`` go to the module's warnings.
    """
    name = params['name']
    if not _NAME.match(name):
        raise Refused('partition name %r: use letters, digits, "_", "." and "-"' % name)
    if not parker['present']:
        raise Refused('no Parker kernfs at %s (the directory is missing): the Boot Kernel needs CONFIG_PARKER and '
                      'parker_cma= on its command line, without which it never registers the kernfs (see '
                      'parker.kernel.mem_reserve mode=boot)' % parker['root'])
    cpus, memory, devices = _request(params, cpu_facts, pci, names or {}, pins)
    existing = _find(parker, name)
    resume = None
    warnings = []
    held_cpus, held_devices = set(), []
    if existing is not None:
        held_cpus = parse_cpus(existing['cpus'])
        held_memory = (existing['memory'] or {}).get('size')
        held_devices = sorted(existing['devices'])
        if (held_cpus, held_memory, held_devices) == (cpus, memory, devices):
            return {'create': False, 'resume': None, 'replace': False, 'cpus': cpus, 'memory': memory,
                    'devices': devices, 'existing': existing, 'warnings': warnings}
        # A run killed part-way leaves a prefix of mkdir, cpus, memory, bind: finish it, rewriting nothing.
        if not existing['online'] and held_cpus in (set(), cpus) and held_memory in (None, memory) \
                and set(held_devices) <= set(devices):
            resume = {'cpus': not held_cpus, 'memory': held_memory is None,
                      'devices': [d for d in devices if d not in held_devices]}
        elif not params['replace'] or existing['online']:
            raise Refused('partition %s exists with cpus=%s memory=%s devices=%s; the request asks cpus=%s memory=%s '
                          'devices=%s. A live partition is never rewritten (a cpus rewrite leaks CPUs in the RFC); '
                          '%s' % (name, existing['cpus'] or '-', format_size(held_memory or 0),
                                  ','.join(held_devices) or '-', format_cpulist(cpus), format_size(memory),
                                  ','.join(devices) or '-',
                                  'its Application Kernel is running: power it off from inside first'
                                  if existing['online'] else 'set replace: true to remove and recreate it'))
    problems = []
    needs_memory = resume is None or resume['memory']
    if cma is not None and needs_memory and cpus and memory > 0:
        refused, warned = cma_problems(name, cpus, memory, cpu_facts, parker, preceding, cma)
        problems.extend(refused)
        warnings.extend(warned)
    alone_facts, alone_claimed = cpu_facts, claimed_cpus
    cpu_facts, claimed_cpus, taken_by = _after_preceding(cpu_facts, claimed_cpus, preceding, parker)
    if len(cpus) > MAX_CPUS or len(devices) > MAX_DEVICES:
        problems.append('Parker allows at most %d CPUs and %d PCI devices per partition' % (MAX_CPUS, MAX_DEVICES))
    if memory <= 0:
        problems.append('memory: must be more than 0')
    own_cpus, own_devices = held_cpus, set(held_devices)
    taken = sorted((cpus & claimed_cpus) - own_cpus - set(taken_by))
    if taken:
        problems.append('CPUs %s already belong to another partition (the kernel answers EINVAL)' % format_cpulist(taken))
    for who in sorted(set(taken_by[c] for c in cpus - own_cpus if c in taken_by)):
        problems.append('CPUs %s are asked for by %s, earlier in this run'
                        % (format_cpulist([c for c in cpus - own_cpus if taken_by.get(c) == who]), who))
    offline = sorted(c['id'] for c in cpu_facts['list']
                     if c['id'] in cpus - own_cpus - claimed_cpus and not c['online'])
    if offline:
        problems.append('CPUs %s are offline in the Boot Kernel; Parker takes online CPUs and offlines them itself'
                        % format_cpulist(offline))
    # The same guards as cpu_offline: present, not the boot CPU, housekeeping, SMT; once for this partition
    # alone and once after the run's earlier ones, which names what only the whole run breaks.
    request = {'cpus': sorted(cpus - own_cpus) or sorted(cpus), 'state': 'offline', 'force': params['force'],
               'allow_smt_split': params['allow_smt_split'],
               'min_housekeeping_cores': params['min_housekeeping_cores']}
    alone = _cpu_problems(alone_facts, alone_claimed, request)
    problems.extend(alone)
    if taken_by:
        problems.extend('with CPUs %s taken earlier in this run: %s' % (format_cpulist(taken_by), p)
                        for p in _cpu_problems(cpu_facts, claimed_cpus, request) if p not in alone)
    index = _pci.by_address(pci)
    for bdf in devices:
        dev = index[bdf]
        if bdf in claimed_devices and bdf not in own_devices:
            problems.append('%s is already claimed by another partition' % bdf)
        elif not dev['driver'] and bdf not in own_devices:
            problems.append('%s has no host driver; Parker bind needs the device bound to its host driver (EBUSY '
                            'otherwise): reattach it with parker.kernel.device_detach state=attached' % bdf)
        if bdf not in own_devices:
            problems.extend(_ownership.takeover_problems(dev, params['force']))
    refuse_all(problems)
    return {'create': resume is None, 'resume': resume, 'replace': existing is not None and resume is None,
            'cpus': cpus, 'memory': memory, 'devices': devices, 'existing': existing, 'warnings': warnings}


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


def _write_memory(txn, base, size, retries, hint=None):
    """memory can fail with ENOMEM while the host uses CMA pages: free caches, compact, retry (§2.8)."""
    for attempt in range(retries + 1):
        try:
            txn.write(base + '/memory', format_size(size))
            return
        except ApplyError as exc:
            if exc.errno == errno.ENOMEM and attempt == retries:
                exc.hint = hint
            if exc.errno != errno.ENOMEM or attempt == retries:
                raise
            txn.actions.pop()
            txn.run(['sync'])
            txn.write('/proc/sys/vm/drop_caches', '3')
            txn.write('/proc/sys/vm/compact_memory', '1')
            time.sleep(1)


def run_partition(params, io, txn):
    # The lock is taken before the kernfs is read: a run killed part-way may leave its module still
    # finishing on the host, and the plan must see what that one did.
    locks = [_lock(io, txn, params['parker_root'])]
    try:
        return _run_partition(params, io, txn, locks)
    except ApplyError as exc:
        if exc.errno == errno.ENOENT and exc.hint is None:
            exc.hint = _parker.missing_hint(io, params['parker_root'], exc.action)
        raise
    finally:
        for lock in locks:
            if lock is not None:
                os.close(lock)


def _mount(params, io, txn, parker):
    """Mount the kernfs when the kernel has it and nothing is mounted at the root: a real Boot Kernel
    leaves /sys/fs/parker an empty directory until someone does. Returns (facts to plan with, mounted)."""
    root = params['parker_root']
    if not parker['present'] or parker['mounted']:
        return parker, False
    if not parker['filesystem_available']:
        raise Refused('nothing is mounted at %s and this kernel has no parker filesystem (not in /proc/filesystems, '
                      'no CONFIG_PARKER=y, no mount.parker helper): boot a Parker Boot Kernel' % root)
    if not params.get('mount_kernfs', True):
        raise Refused('nothing is mounted at %s (a Parker Boot Kernel does not mount its kernfs at boot) and '
                      'mount_kernfs is false: mount it (mount -t parker none %s) or set mount_kernfs: true'
                      % (root, root))
    # No undo: the mount holds nothing itself, and unmounting again would hide partitions the kernel holds.
    txn.run(_parker.mount_argv(root))
    if txn.check_mode:
        return parker, True
    after = _parker.parker_facts(io, root)
    if not after['mounted']:
        raise ApplyError(' '.join(_parker.mount_argv(root)), None, 'mount returned but /proc/mounts shows nothing '
                         'mounted at %s' % root)
    return after, True


def _same_dir(handle, path):
    """Whether the open ``handle`` is the directory at ``path`` (flock conflicts between our own handles)."""
    if handle is None or not os.path.isdir(path):
        return False
    held, now = os.fstat(handle), os.stat(path)
    return (held.st_dev, held.st_ino) == (now.st_dev, now.st_ino)


def _run_partition(params, io, txn, locks):
    root = params['parker_root']
    # parker_facts reads nothing from the kernfs while a start's online writer blocks (a show handler may
    # wait on the same mutex); every write would hang behind it, so nothing is tried.
    parker = _facts.parker_facts(io, root)
    if parker['blocked_starts']:
        raise Refused(_facts.blocked_message(parker['blocked_starts']))
    parker, mounting = _mount(params, io, txn, parker)
    warnings = []
    if mounting and txn.check_mode:
        warnings.append('would mount %s (mount -t parker none %s): nothing is mounted there, so this plan is for an '
                        'empty kernfs; partitions the kernel still holds reattach when it is mounted' % (root, root))
    if parker['mounted'] and not any(_same_dir(lock, io.path(root)) for lock in locks):
        # The lock taken first may be the mount point under the kernfs (this run, or one that waited
        # on it, found nothing mounted): the mounted root is what every other run locks.
        locks.append(_lock(io, txn, root))
    name = params['name']
    existing = _find(parker, name) if parker['present'] else None
    base = '%s/%s' % (root, name)
    # Records are kept only for partitions the mounted kernfs has (one removed outside the collection, or
    # never built by a failed run, goes with the next save: its names would shadow what the Boot Kernel calls
    # those devices now); the writer pids are spent.
    live = set(p['name'] for p in parker['partitions'])
    saved = dict((n, dict((k, v) for k, v in r.items() if k != 'blocked_writer'))
                 for n, r in io.load_json(PARTITION_STATE, {}).items() if n in live or not parker['mounted'])

    if params['state'] == 'absent':
        return _finish(_absent(params, io, txn, existing, saved, base), mounting, warnings)

    cpu_facts = _facts.cpu_facts(io)
    pci = _facts.pci_facts(io)
    claimed_cpus, claimed_devices = _facts.claims_of(parker)
    names = saved_names(saved)
    pins = io.load_json(SELECTOR_STATE, {})
    # Read on every run, never cached: physical KASLR changes the areas from boot to boot.
    log = _parker.kernel_log(io)
    cma = _parker.cma_areas(io, log)
    plan = plan_present(params, cpu_facts, pci, parker, claimed_cpus, claimed_devices, names,
                        parse_preceding(params.get('preceding'), cpu_facts, name), cma, pins)
    warnings.extend(plan['warnings'])
    node_of = dict((c['id'], c['node']) for c in cpu_facts['list'])
    memory_hint = enomem_hint(cma, node_of.get(min(plan['cpus']))) if plan['cpus'] else None
    if params['state'] == 'started':
        if not params['kernel']:
            raise Refused('state=started needs kernel (and usually initrd)')
        if existing and existing['online']:
            if not _left_in_slot(io, existing):
                return _finish(_report(name, existing, changed=False, started=True), mounting, warnings)
            # A run killed between online and kexec -u left this partition's image in the host's only slot.
            return _finish(_finish_killed_start(params, io, txn, existing, saved, plan), mounting, warnings)
        if existing and saved.get(name, {}).get('started') and not plan['replace']:
            raise Refused('partition %s already ran once; Parker partitions are single-use: set state absent, then '
                          'started again' % name)
        # Everything the start needs is checked now, before mkdir: command line, kernel files, kexec policy.
        extra = _app_extra(params, _parker.tsc_khz(log), warnings)
        _app_line(params, '0x0', plan['memory'], 0, extra)
        _kexec.plan_load(_kexec_params(params, '', 0, plan['memory']), io, _facts.kexec_facts(io),
                         _kexec.find_kexec(io))
    # Names first: bind takes net=/block= names away from the Boot Kernel, and a run killed after it
    # must still find the devices by the names the inventory uses.
    held = {'cpus': format_cpulist(plan['cpus']), 'memory': plan['memory'], 'devices': plan['devices'],
            'names': _names_of(plan['devices'], pci, names)}
    was_started = saved.get(name, {}).get('started', False)
    # A pin stays as first resolved; only selectors without one (or whose device is gone) get one now.
    present = set(d['address'] for d in pci['devices'])
    all_pins = selector_pins(params['devices'], pci, names)
    all_pins.update((sel, bdf) for sel, bdf in pins.items() if bdf in present or sel not in all_pins)
    if plan['create'] or plan['resume']:
        if all_pins != pins:
            # Kept past rmdir, for the boot (/run): the device may come back under another name.
            txn.save_json(SELECTOR_STATE, all_pins)
        # Rolled back with the mkdir: a failed run leaves no record of a partition the kernel does not hold.
        saved = _remember(txn, saved, name, undo=plan['create'], started=was_started and not plan['create'], **held)
    if plan['create']:
        if plan['replace']:
            txn.rmdir(base)
        txn.mkdir(base)
        txn.write(base + '/cpus', format_cpulist(plan['cpus']))
        _write_memory(txn, base, plan['memory'], params['memory_retries'], memory_hint)
        for bdf in plan['devices']:
            txn.write(base + '/bind', bdf)
    elif plan['resume']:
        if plan['resume']['cpus']:
            txn.write(base + '/cpus', format_cpulist(plan['cpus']))
        if plan['resume']['memory']:
            _write_memory(txn, base, plan['memory'], params['memory_retries'], memory_hint)
        for bdf in plan['resume']['devices']:
            txn.write(base + '/bind', bdf)
    current = _facts.parker_facts(io, root) if not txn.check_mode else parker
    part = _find(current, name) if not txn.check_mode or not plan['create'] else None
    if not txn.check_mode:
        _verify_present(part, plan)
    started = False
    if params['state'] == 'started':
        started = _start(params, io, txn, base, part, plan, extra)
        if not txn.check_mode:
            part = dict(part, online=True)  # _start verified online reads 1
    _remember(txn, saved, name, started=started or saved.get(name, {}).get('started', False), **held)
    # In check mode a partition to be created is not online: nothing has run.
    result = _report(name, part or {'cpus': format_cpulist(plan['cpus']), 'memory': None,
                                    'devices': plan['devices'], 'online': False}, changed=txn.changed,
                     started=started)
    result['selectors'] = dict((sel, all_pins[sel]) for sel in (str(d).strip() for d in params['devices'])
                               if sel in all_pins)
    _finish(result, mounting, warnings)
    result['diff'] = diff_of('%s (%s)' % (base, params['state']),
                             _describe(plan['existing']), _describe(part) if part else 'would create: cpus=%s memory=%s '
                             'devices=%s' % (format_cpulist(plan['cpus']), format_size(plan['memory']),
                                             ','.join(plan['devices']) or '-'))
    return result


def _left_in_slot(io, existing):
    """True when the normal kexec slot still holds the image this partition was started with."""
    if not _facts.kexec_facts(io)['loaded']:
        return False
    loaded = io.load_json(_kexec.state_file('normal'), {})
    return ('parker=%s' % existing['control_structure']) in (loaded.get('cmdline') or '').split()


def _finish_killed_start(params, io, txn, existing, saved, plan):
    _unload(txn, _kexec_params(params, '', 0, plan['memory']), io)
    _remember(txn, saved, params['name'], cpus=existing['cpus'], memory=plan['memory'], devices=plan['devices'],
              started=True)
    return _report(params['name'], existing, changed=True, started=True)


def _remember(txn, saved, name, undo=False, **fields):
    """Update this partition's record in the state file when it changed; return the new records."""
    record = dict(saved)
    record[name] = dict(saved.get(name) or {}, **fields)
    if record != saved:
        txn.save_json(PARTITION_STATE, record, undo=undo)
    return record


def _finish(result, mounting, warnings):
    result['mounted_kernfs'] = mounting
    result['warnings'] = list(warnings)
    return result


def _verify_present(part, plan):
    if part is None:
        raise ApplyError('verify partition', None, 'the partition directory is missing after mkdir')
    problems = []
    if parse_cpus(part['cpus']) != plan['cpus']:
        problems.append('cpus reads %r' % part['cpus'])
    if not part['memory'] or part['memory']['size'] != plan['memory']:
        problems.append('memory reads %r' % (part['memory'],))
    if sorted(part['devices']) != sorted(plan['devices']):
        problems.append('devices/ lists %s' % ', '.join(part['devices']))
    if problems:
        raise ApplyError('verify partition', None, '; '.join(problems))


def _app_extra(params, measured_khz, warnings):
    """The tuning tokens after ip=: the user's, then nokaslr and tsc_early_khz= unless turned off or given.

    nokaslr: the kexec placement and memmap= pin the image inside the partition's memory. tsc_early_khz=
    skips an Application Kernel's own TSC calibration, which hung under QEMU TCG on a real start.
    """
    extra = [_token_arg(t) for t in params['cmdline'] or []]
    given = set(a['name'] for a in extra)
    if params.get('nokaslr', True) and not given & set(['nokaslr', 'kaslr']):
        extra.append({'name': 'nokaslr'})
    tsc = str(params.get('tsc_early_khz', 'auto') if params.get('tsc_early_khz') is not None else 'auto').strip()
    if 'tsc_early_khz' in given or tsc.lower() in OFF:
        return extra
    if tsc.lower() == 'auto':
        if measured_khz is None:
            warnings.append('tsc_early_khz=auto: the Boot Kernel\'s log has no "tsc: Refined TSC clocksource '
                            'calibration" or "tsc: Detected ... MHz processor" line, so the Application Kernel '
                            'calibrates its TSC itself; set tsc_early_khz to the kHz value to pass one')
            return extra
        tsc = str(measured_khz)
    if not tsc.isdigit():
        raise Refused('tsc_early_khz: %r is not auto, off or a frequency in kHz' % tsc)
    extra.append({'name': 'tsc_early_khz', 'value': tsc})
    return extra


def _app_line(params, control, size, start, extra):
    try:
        return app_kernel_tokens(control, size, start, console=params['console'], root=params['root'],
                                 ip=params['ip'], extra=extra, machine=os.uname()[4])
    except RenderError as exc:
        raise Refused('Application Kernel command line: %s' % exc)


def _kexec_params(params, cmdline, start, size):
    return {'kernel': params['kernel'], 'initrd': params['initrd'], 'cmdline': cmdline, 'reuse_cmdline': False,
            'cmdline_add': None, 'cmdline_remove': None, 'state': 'loaded', 'type': 'normal',
            'mem_min': '0x%x' % start, 'mem_max': '0x%x' % (start + size - 1), 'method': 'legacy'}


def _start(params, io, txn, base, part, plan, extra):
    """Load the Application Kernel inside the partition's memory, write online, clear the slot."""
    if txn.check_mode:
        control, start = '0x0', 0
    else:
        control, start = part['control_structure'], part['memory']['start']
    tokens = _app_line(params, control, plan['memory'], start, extra)
    kexec_params = _kexec_params(params, ' '.join(tokens), start, plan['memory'])
    if txn.check_mode:
        txn.actions.append('kexec -l %s inside the partition (cmdline %s)' % (params['kernel'], ' '.join(tokens)))
    else:
        _kexec.run_kexec_load(kexec_params, io, txn)

    def note_writer(pid):
        # Recorded as the writer starts, before the wait: the partition is used from here on (single-use), even
        # if this run dies, and a run killed while it waits leaves the next one a pid to check. A run killed
        # earlier (during the kexec load) has not used it, and the next run starts it. The pid goes with the
        # record this run saves after the start, or the next run's.
        _remember(txn, io.load_json(PARTITION_STATE, {}), params['name'], started=True, blocked_writer=pid)
    try:
        txn.write_blocking(base + '/online', '1', params['start_timeout'], on_spawn=note_writer)
    except ApplyError as exc:
        if exc.errno == errno.ETIMEDOUT:
            # The writer still spins in the kernel holding parker_mutex, and the partition's CPUs may be running
            # the image: undoing (rmdir, kexec -u) would hang or pull resources from under it.
            txn.discard_undo()
            timed_out = ApplyError('start partition %s' % params['name'], errno.ETIMEDOUT,
                                   'the Application Kernel did not report online within %d s; the write is still '
                                   'blocked in the kernel holding Parker\'s mutex. Nothing was undone: check the '
                                   'Application Kernel\'s console, and reset the host to recover'
                                   % params['start_timeout'])
            timed_out.left_in_place = True
            raise timed_out
        _unload(txn, kexec_params, io)
        raise
    # One slot: an image left there would kexec the host on its next `systemctl kexec`.
    _unload(txn, kexec_params, io)
    online = None if txn.check_mode else io.read(base + '/online')
    if online not in (None, '1'):
        raise ApplyError('verify %s/online' % base, None, 'the write returned but online reads %r' % online)
    return True


def _unload(txn, kexec_params, io):
    if txn.check_mode:
        txn.actions.append('kexec -u')
    else:
        _kexec.run_kexec_load(dict(kexec_params, state='unloaded'), io, txn)


def _token_arg(token):
    name, sep, value = token.partition('=')
    return {'name': name, 'value': value} if sep else {'name': name}


def _still_online(params, io, txn, existing):
    """Whether the partition still runs, after waiting up to poweroff_timeout for it to clear online.

    Reads that one file in a loop through HostIO (a read error is "not yet", never a failure); no
    start can be blocked meanwhile: none was at the start of the run, and this run holds the lock.
    Check mode does not wait: with a timeout it reports the rmdir that would follow.
    """
    timeout = params.get('poweroff_timeout') or 0
    if not existing['online'] or timeout <= 0:
        return existing['online']
    if txn.check_mode:
        return False
    deadline = time.time() + timeout
    while True:
        if _parker.online_of(io, params['parker_root'], params['name']) is False:
            return False
        if time.time() >= deadline:
            return True
        time.sleep(1)


def _absent(params, io, txn, existing, saved, base):
    if existing is None:
        return {'changed': False, 'name': params['name'], 'returned': None,
                'diff': diff_of(base, 'absent', 'absent')}
    if _still_online(params, io, txn, existing):
        raise Refused('partition %s runs an Application Kernel%s and Parker has no host-side stop: power it off from '
                      'inside (it clears online), then run again'
                      % (params['name'], ' (online still 1 after poweroff_timeout=%ss)' % params['poweroff_timeout']
                         if params.get('poweroff_timeout') else ''))
    txn.rmdir(base)
    if not txn.check_mode:
        cpus = parse_cpus(existing['cpus'])
        back = _facts.cpu_state(io)['online']
        missing = sorted(cpus - back)
        if missing:
            raise ApplyError('verify rmdir', None, 'CPUs %s did not come back online' % format_cpulist(missing))
    record = dict(saved)
    record.pop(params['name'], None)
    if record != saved:
        txn.save_json(PARTITION_STATE, record)
    return {'changed': True, 'name': params['name'],
            'returned': {'cpus': existing['cpus'], 'memory': existing['memory'], 'devices': existing['devices']},
            'diff': diff_of(base, _describe(existing), 'absent')}


def _describe(part):
    if not part:
        return 'absent'
    memory = part.get('memory') or {}
    return 'cpus=%s memory=%s devices=%s online=%s' % (
        part.get('cpus') or '-', format_memmap(memory['size'], memory['start']) if memory else '-',
        ','.join(part.get('devices') or []) or '-', part.get('online'))


def _report(name, part, changed, started):
    memory = part.get('memory') or {}
    result = {'changed': changed, 'name': name, 'cpus': part.get('cpus'), 'devices': part.get('devices'),
              'memory': memory or None, 'memmap': format_memmap(memory['size'], memory['start']) if memory else None,
              'control_structure': part.get('control_structure'), 'online': bool(part.get('online')),
              'started': started}
    if started:
        # online is not health: say what is not known rather than imply every CPU runs the instance.
        result['instance_cpus'] = None
        result['instance_cpus_note'] = INSTANCE_CPUS_NOTE
    return result


def conflicts(partitions):
    """Problems between one host's partitions: a repeated name, a CPU or a device asked twice (pure).

    ``partitions`` are dicts with name, cpus (cpulist) and devices (PCI addresses), as the module
    reports them, so selectors that name the same device (net=eth2, 0000:00:07.0) are caught too.
    """
    problems, owners = [], {}
    names = [p.get('name') for p in partitions]
    for name in sorted(set(n for n in names if names.count(n) > 1)):
        problems.append('partition %s is listed %d times' % (name, names.count(name)))
    for part in partitions:
        try:
            cpus = parse_cpus(part.get('cpus') or '')
        except (CpulistError, ValueError):
            cpus = set()  # the module refuses it with a precise message
        for kind, items in (('CPU', sorted(cpus)), ('device', sorted(part.get('devices') or []))):
            for item in items:
                first = owners.setdefault((kind, item), part.get('name'))
                if first != part.get('name'):
                    problems.append('%s %s is asked for by both %s and %s' % (kind, item, first, part.get('name')))
    return problems
