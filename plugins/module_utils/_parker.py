# -*- coding: utf-8 -*-
# Copyright (c) parker.kernel contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# This module util is PRIVATE to the parker.kernel collection.
# It can have breaking changes at any time.

"""What a Parker Boot Kernel shows: its kernfs, whether it is mounted, and its CMA areas.

Read-only, like _facts (which re-exports the kernfs readers). Only what the kernel
itself reports counts: the CMA areas come from debugfs, /sys/kernel/mm/cma and the
kernel log, in that order of authority, and are read on every call, never cached
(physical KASLR moves them from boot to boot). The layout ``parker_cma=`` should
give is computed by ``expected_layout`` (pure) and is only an expectation.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import errno
import gzip
import os
import re

from ansible_collections.parker.kernel.plugins.module_utils._cpulist import parse_cpulist, CpulistError
from ansible_collections.parker.kernel.plugins.module_utils._cmdline import memparse, format_size, split_cmdline, SizeError
from ansible_collections.parker.kernel.plugins.module_utils._common import Refused
from ansible_collections.parker.kernel.plugins.module_utils import _state

PARKER_ROOT = _state.PARKER_ROOT
FS_TYPE = 'parker'
MOUNT_HELPERS = ('/sbin/mount.parker', '/usr/sbin/mount.parker')
DEBUGFS_CMA = '/sys/kernel/debug/cma'
SYSFS_CMA = '/sys/kernel/mm/cma'
KMSG = '/dev/kmsg'
GIB = 1 << 30
MIB = 1 << 20
PAGE = 4096  # Parker is x86-64 only

_RESERVE = re.compile(r'parker: reserve CMA (\d+) MiB, up to (\d+) MiB per node')
_RESERVED = re.compile(r'parker: reserved (\d+) MiB on node (\d+)')
_FAILED = re.compile(r'parker: node (\d+) reservation failed(?:, err (-?\d+))?')
_CMA_AT = re.compile(r'cma: Reserved (\d+) MiB at (0x[0-9a-fA-F]+) on node (\d+)')
_KMSG_PREFIX = re.compile(r'^\d+,\d+,\d+,[^;]*;')
_TSC_DETECTED = re.compile(r'tsc: Detected (\d+)(?:\.(\d+))? MHz processor')
_TSC_REFINED = re.compile(r'tsc: Refined TSC clocksource calibration: (\d+)(?:\.(\d+))? MHz')


# -- the kernfs -------------------------------------------------------------

def mounted_type(io, path):
    """The filesystem type /proc/mounts shows at ``path``, or None (the last mount there wins)."""
    path = os.path.normpath(path)
    found = None
    for line in (io.read('/proc/mounts', '') or '').splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[1].replace('\\040', ' ') == path:
            found = fields[2]
    return found


def _config_parker(io):
    release = io.read('/proc/sys/kernel/osrelease')
    text = io.read('/boot/config-%s' % release) if release else None
    if text is None and io.exists('/proc/config.gz'):
        try:
            text = gzip.decompress(io.read_bytes('/proc/config.gz')).decode()
        except (IOError, OSError, ValueError, AttributeError):
            text = None
    return 'CONFIG_PARKER=y' in (text or '').splitlines()


def filesystem_source(io):
    """Where mount(8) gets a ``parker`` filesystem from: the kernel's list, its config, or a mount helper."""
    for line in (io.read('/proc/filesystems', '') or '').splitlines():
        if FS_TYPE in line.split():
            return '/proc/filesystems'
    if _config_parker(io):
        return 'CONFIG_PARKER'
    for helper in MOUNT_HELPERS:
        if io.exists(helper):
            return helper
    return None


def blocked_starts(io):
    """[{'partition', 'pid'}] of starts whose online writer is still blocked in the kernel.

    parker.kernel.partition records the writer's pid in its state file when it starts it;
    while that process lives, Parker's mutex is held and the kernfs is not touched.
    """
    stuck = []
    for name, record in sorted(_state.load(io, _state.PARTITIONS).items()):
        pid = record.get('blocked_writer')
        if pid and ('/%s/online' % name) in (io.read('/proc/%d/cmdline' % pid, '') or ''):
            stuck.append({'partition': name, 'pid': pid})
    return stuck


def blocked_message(stuck):
    return ('the start of %s is still blocked in the kernel writing online (pid %s), holding Parker\'s mutex: '
            'any partition operation on this host would hang behind it. Wait until that Application Kernel reports '
            'online (the writer then exits), or reset the host'
            % (', '.join(s['partition'] for s in stuck), ', '.join(str(s['pid']) for s in stuck)))


def read_partition(io, root, name):
    """One partition's kernfs view, or None when its directory is gone."""
    base = root + '/' + name
    if not io.isdir(base):
        return None
    memory = io.read(base + '/memory')
    size = start = None
    if memory and '@' in memory:
        size_text, _sep, start_text = memory.partition('@')
        try:
            size, start = int(size_text), int(start_text, 16)
        except ValueError:
            size = start = None
    return {
        'name': name,
        'id': io.read_int(base + '/id'),
        'cpus': io.read(base + '/cpus') or '',
        'memory': {'size': size, 'start': start} if size else None,
        'devices': io.listdir(base + '/devices'),
        'online': io.read(base + '/online') == '1',
        'control_structure': io.read(base + '/control_structure'),
    }


def parker_facts(io, root=PARKER_ROOT):
    """The kernfs's partitions.

    Nothing under the root is read while a start blocks (``blocked_starts`` set instead: Parker's
    mutex makes those reads hang) or while nothing is mounted there (an empty mount point, on
    which a mkdir would not make a partition).
    """
    stuck = blocked_starts(io)
    present = io.isdir(root)
    fs_type = mounted_type(io, root)
    source = filesystem_source(io)
    facts = {'root': root, 'present': present, 'mounted': fs_type is not None, 'fs_type': fs_type,
             'filesystem_available': source is not None, 'filesystem_source': source,
             'partitions': [], 'blocked_starts': stuck}
    if stuck or fs_type is None:
        return facts
    facts['partitions'] = [read_partition(io, root, name) for name in io.listdir(root) if io.isdir(root + '/' + name)]
    return facts


def online_of(io, root, name):
    """One partition's ``online`` flag, read alone (a wait loop); None when it cannot be read."""
    value = io.read('%s/%s/online' % (root, name))
    return None if value is None else value == '1'


def claims_of(parker):
    """(CPUs, devices) held by the partitions of parker_facts() (pure). Unknown while a start blocks.

    A device is claimed when a partition lists it under devices/, whatever its driver link says:
    after bind a real kernel leaves the link naming the host driver.
    """
    if parker.get('blocked_starts'):
        raise Refused(blocked_message(parker['blocked_starts']))
    cpus, devices = set(), set()
    for part in parker['partitions']:
        try:
            cpus |= parse_cpulist(part['cpus'])
        except CpulistError:
            pass
        devices.update(part['devices'])
    return cpus, devices


def parker_claims(io, root=PARKER_ROOT):
    """CPUs and devices held by Parker partitions: the host must never touch them.

    Partitions outlive an umount of the kernfs, unseen: while nothing is mounted, what
    parker.kernel.partition recorded as built this boot counts as held too.
    """
    facts = parker_facts(io, root)
    cpus, devices = claims_of(facts)
    if facts['present'] and not facts['mounted']:
        for record in _state.load(io, _state.PARTITIONS).values():
            try:
                cpus |= parse_cpulist(record.get('cpus') or '')
            except CpulistError:
                pass
            devices.update(record.get('devices') or [])
    return cpus, devices


def claimed_by(parker):
    """{PCI address: partition} (pure); empty while a start blocks (nothing was read)."""
    return dict((bdf, part['name']) for part in parker['partitions'] for bdf in part['devices'])


# -- the kernel log ---------------------------------------------------------

def kernel_log(io):
    """The kernel log's messages, from /dev/kmsg read non-blocking through HostIO (a file in fake trees)."""
    lines = []
    for line in io.read_records(KMSG):
        if line.startswith(' '):
            continue  # a record's KEY=value continuation
        lines.append(_KMSG_PREFIX.sub('', line, count=1))
    return lines


def tsc_khz(log):
    """The Boot Kernel's measured TSC frequency in kHz: the refined calibration, else the detected one."""
    found = {}
    for line in log:
        for kind, pattern in (('refined', _TSC_REFINED), ('detected', _TSC_DETECTED)):
            match = pattern.search(line)
            if match:
                frac = (match.group(2) or '')[:3].ljust(3, '0')
                found[kind] = int(match.group(1)) * 1000 + int(frac)
    return found.get('refined') or found.get('detected')


def _log_areas(log):
    """{'requested', 'per_node', 'reserved': {nid: {size, base}}, 'failed': {nid: err}} from the log.

    The parker: lines decide; a cma: line only lends its base to the parker: line that follows it.
    A new 'parker: reserve CMA' line starts over (the emulation can log a second boot).
    """
    state = {'requested': None, 'per_node': None, 'reserved': {}, 'failed': {}}
    bases = {}
    for line in log:
        match = _RESERVE.search(line)
        if match:
            state = {'requested': int(match.group(1)) * MIB, 'per_node': int(match.group(2)) * MIB,
                     'reserved': {}, 'failed': {}}
            bases = {}
            continue
        match = _CMA_AT.search(line)
        if match:
            bases[int(match.group(3))] = (int(match.group(1)) * MIB, int(match.group(2), 16))
            continue
        match = _RESERVED.search(line)
        if match:
            size, nid = int(match.group(1)) * MIB, int(match.group(2))
            base = bases.get(nid)
            state['reserved'][nid] = {'size': size, 'base': base[1] if base and base[0] == size else None}
            state['failed'].pop(nid, None)
            continue
        match = _FAILED.search(line)
        if match:
            nid = int(match.group(1))
            state['failed'][nid] = int(match.group(2)) if match.group(2) else None
            state['reserved'].pop(nid, None)
    return state


# -- CMA areas --------------------------------------------------------------

def _area_nodes(io, top):
    return sorted(int(n[6:]) for n in io.listdir(top) if n.startswith('parker') and n[6:].isdigit())


def _debugfs_areas(io):
    areas = {}
    for nid in _area_nodes(io, DEBUGFS_CMA):
        base = '%s/parker%d' % (DEBUGFS_CMA, nid)
        count, used, pfn = io.read_int(base + '/count'), io.read_int(base + '/used'), io.read_int(base + '/base_pfn')
        areas[nid] = {'size': count * PAGE if count is not None else None,
                      'used': used * PAGE if used is not None else None,
                      'base': pfn * PAGE if pfn is not None else None}
    return areas


def _sysfs_areas(io):
    areas = {}
    for nid in _area_nodes(io, SYSFS_CMA):
        base = '%s/parker%d' % (SYSFS_CMA, nid)
        total, available = io.read_int(base + '/total_pages'), io.read_int(base + '/available_pages')
        taken, released = io.read_int(base + '/alloc_pages_success'), io.read_int(base + '/release_pages_success')
        areas[nid] = {'size': total * PAGE if total is not None else None,
                      'free': available * PAGE if available is not None else None,
                      'used': (taken - (released or 0)) * PAGE if taken is not None else None}
    return areas


def _meminfo_cma(io):
    values = {}
    for line in (io.read('/proc/meminfo', '') or '').splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] in ('CmaTotal:', 'CmaFree:'):
            values[parts[0][:-1]] = int(parts[1]) * 1024
    return values.get('CmaTotal'), values.get('CmaFree')


def online_nodes(io):
    try:
        return sorted(parse_cpulist(io.read('/sys/devices/system/node/online') or '0'))
    except CpulistError:
        return [0]


def parker_cma_value(io):
    """The running line's parker_cma= value (the last one counts, as with any early parameter), or None."""
    values = [t.split('=', 1)[1] for t in split_cmdline(io.read('/proc/cmdline', '') or '')
              if t.startswith('parker_cma=')]
    return values[-1] if values else None


def _roundup(size):
    return -(-int(size) // GIB) * GIB


def expected_layout(value, nodes, failed=()):
    """The areas the RFC's parker_early_cma() reserves for ``value`` on the online ``nodes`` (pure).

    ``failed`` are nodes whose reservation fails (known only after boot). Returns
    {'areas': {nid: bytes}, 'tried': [nids in the order tried], 'problems': [...], 'warnings': [...]}:
    problems are values the kernel rejects or nodes that do not exist; warnings are shares it drops.
    """
    nodes = sorted(nodes) or [0]
    result = {'areas': {}, 'tried': [], 'problems': [], 'warnings': []}
    value = str(value).strip()
    try:
        if ':' in value:
            wanted = []
            for part in value.split(','):
                nid, _sep, size = part.partition(':')
                if not nid.strip().isdigit():
                    raise SizeError(part)
                wanted.append((int(nid), memparse(size.strip())))
            total = None
        else:
            total = memparse(value)
            per = _roundup(-(-total // len(nodes))) if total else 0
            wanted = [(nid, per) for nid in nodes]
    except SizeError:
        result['problems'].append('parker_cma=%s: malformed; use SIZE or NODE:SIZE[,NODE:SIZE]' % value)
        return result
    if total is not None and total < GIB:
        result['problems'].append('parker_cma=%s: %s is below the 1G minimum; the kernel reserves nothing'
                                  % (value, format_size(total)))
        return result
    reserved = 0
    for nid, size in wanted:
        if total is not None and reserved >= total:
            break  # SIZE form: stop once the total is reached
        if nid not in nodes:
            result['problems'].append('parker_cma=%s: node %d does not exist (online nodes: %s)'
                                      % (value, nid, ','.join(str(n) for n in nodes)))
            continue
        if size < GIB:
            result['warnings'].append('parker_cma=%s: node %d gets %s, below the 1G minimum; the kernel drops it'
                                      % (value, nid, format_size(size)))
            continue
        result['tried'].append(nid)
        if nid in failed:
            continue  # the kernel moves on to the next node
        result['areas'][nid] = _roundup(size)
        reserved += _roundup(size)
    return result


def cma_areas(io, log=None):
    """The Parker CMA areas the running kernel reports, per node; read on every call.

    Returns None when neither the command line nor the kernel says anything about them.
    Otherwise {'known', 'sources', 'parker_cma', 'areas': [{node, size, used, free, base, source}],
    'failed_nodes', 'expected', 'cma_total', 'cma_free', 'warnings'}. ``known`` is false when only
    parker_cma= (an expectation) gives the areas: the checks then warn instead of refusing.
    """
    value = parker_cma_value(io)
    nodes = online_nodes(io)
    expected = expected_layout(value, nodes) if value is not None else None
    debug, sysfs = _debugfs_areas(io), _sysfs_areas(io)
    logged = _log_areas(kernel_log(io) if log is None else log)
    sources = [name for name, found in (('debugfs', debug), ('sysfs', sysfs),
                                        ('kmsg', logged['reserved'] or logged['failed'])) if found]
    if value is None and not sources:
        return None
    cma_total, cma_free = _meminfo_cma(io)
    areas, warnings = [], []
    if sources:
        for nid in sorted(set(debug) | set(sysfs) | set(logged['reserved'])):
            area = {'node': nid, 'size': None, 'used': None, 'free': None, 'base': None, 'source': None}
            for source, found in (('debugfs', debug), ('sysfs', sysfs), ('kmsg', logged['reserved'])):
                for key, item in found.get(nid, {}).items():
                    if area.get(key) is None and item is not None:
                        area[key] = item
                        if key == 'size':
                            area['source'] = source
            if area['size'] is None and expected and nid in expected['areas']:
                area['size'], area['source'] = expected['areas'][nid], 'expected'
            if (area['free'] is None or nid in debug) and area['size'] is not None and area['used'] is not None:
                area['free'] = area['size'] - area['used']  # debugfs's own count beats sysfs's available_pages
            areas.append(area)
        failed = sorted(n for n in logged['failed'] if n not in [a['node'] for a in areas])
        for nid in failed:
            warnings.append('node %d\'s Parker CMA reservation failed at boot (kernel log: parker: node %d reservation '
                            'failed, err %s): node %d has no Parker CMA area this boot' % (nid, nid, logged['failed'][nid], nid))
        if expected is not None and not expected['problems']:
            got = dict((a['node'], a['size']) for a in areas)
            if got != expected['areas']:
                warnings.append('parker_cma=%s would give %s; the kernel reserved %s' % (
                    value, _describe(expected['areas']), _describe(got)))
    else:
        failed = []
        areas = [{'node': nid, 'size': size, 'used': None, 'free': None, 'base': None, 'source': 'expected'}
                 for nid, size in sorted(expected['areas'].items())]
        warnings.append('the kernel does not report its Parker CMA areas (no debugfs cma/parker<N>, no %s/parker<N>, '
                        'no parker: lines in the kernel log); parker_cma=%s should give %s, which is only an '
                        'expectation: memory is checked against it with warnings, not refusals'
                        % (SYSFS_CMA, value, _describe(expected['areas'])))
    if cma_total is not None and sources and cma_total < sum(a['size'] or 0 for a in areas):
        warnings.append('CmaTotal (%s) is less than the Parker CMA areas reported (%s)'
                        % (format_size(cma_total), format_size(sum(a['size'] or 0 for a in areas))))
    return {'known': bool(sources), 'sources': sources, 'parker_cma': value, 'areas': areas, 'failed_nodes': failed,
            'expected': ([{'node': n, 'size': s} for n, s in sorted(expected['areas'].items())]
                         if expected is not None else None),
            'cma_total': cma_total, 'cma_free': cma_free, 'warnings': warnings}


def _describe(areas):
    return ', '.join('node %d: %s' % (n, format_size(s or 0)) for n, s in sorted(areas.items())) or 'no area'


def area_of(cma, node):
    """The area ``cma_areas`` reports on ``node``, or None."""
    return next((a for a in (cma or {}).get('areas') or [] if a['node'] == node), None)


def no_area_reason(cma, node):
    """Why ``node`` has no Parker CMA area and what to do instead, for a refusal (pure)."""
    others = [a['node'] for a in cma['areas'] if a['size']]
    elsewhere = ('give the partition a first CPU on node %s, which has an area' % ','.join(str(n) for n in others)
                 if others else 'no node has an area this boot')
    if node in cma['failed_nodes']:
        return ('its reservation failed at boot (no free 1 GiB-aligned GiB on node %d: physical KASLR or early '
                'allocations took it); keep one free on the next boot (memmap= reserving what the kernel image may '
                'use, or movablecore=), or %s' % (node, elsewhere))
    if cma['parker_cma'] is None:
        return 'the kernel reserved none there; %s' % elsewhere
    return ('parker_cma=%s gives it none (the RFC gives each node tried roundup(SIZE / nodes, 1G) until SIZE is '
            'reached, or only the nodes listed as NODE:SIZE); raise parker_cma= or list node %d, or %s'
            % (cma['parker_cma'], node, elsewhere))


# -- mounting ---------------------------------------------------------------

def mount_argv(root):
    return ['mount', '-t', FS_TYPE, 'none', root]


def missing_hint(io, root, action):
    """An ENOENT hint that fits the path: under an unmounted root it means "not mounted"."""
    if root not in action:
        return None
    if mounted_type(io, root) is None:
        return ('nothing is mounted at %s: mount it (mount -t parker none %s, which parker.kernel.partition does with '
                'mount_kernfs: true); the kernel has the feature if partition_facts shows parker.filesystem_available'
                % (root, root))
    return ('the Parker kernfs is mounted at %s but this file is missing: the partition went away meanwhile (an rmdir '
            'outside this run?); gather partition_facts again' % root)


def is_enoent(exc):
    return getattr(exc, 'errno', None) == errno.ENOENT
