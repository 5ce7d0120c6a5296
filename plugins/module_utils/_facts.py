# -*- coding: utf-8 -*-
# Copyright (c) parker.kernel contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# This module util is PRIVATE to the parker.kernel collection.
# It can have breaking changes at any time.

"""Read-only host facts: everything a partition planner and the modules need.

Every function takes a HostIO and only reads. Modules gather the subsets they
need, plan against them, and gather again to verify.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import gzip
import re

from ansible_collections.parker.kernel.plugins.module_utils._cpulist import parse_cpulist, format_cpulist, CpulistError
from ansible_collections.parker.kernel.plugins.module_utils._cmdline import split_cmdline
from ansible_collections.parker.kernel.plugins.module_utils._ownership import pci_facts  # noqa: F401 (re-exported)
from ansible_collections.parker.kernel.plugins.module_utils import _parker, _state

CPU_ROOT = '/sys/devices/system/cpu'
MEM_ROOT = '/sys/devices/system/memory'
NODE_ROOT = '/sys/devices/system/node'
PCI_ROOT = '/sys/bus/pci/devices'
PARKER_ROOT = _state.PARKER_ROOT

KERNEL_OPTIONS = ('HOTPLUG_CPU', 'MEMORY_HOTPLUG', 'MEMORY_HOTREMOVE', 'KEXEC', 'KEXEC_FILE',
                  'CMA', 'PARKER', 'MULTIKERNEL')
SUBSETS = ('cpus', 'numa', 'memory', 'reservations', 'pci', 'kexec', 'kernel', 'parker')


def _cpulist(io, rel):
    text = io.read(rel)
    if text is None:
        return set()
    try:
        return parse_cpulist(text)
    except CpulistError:
        return set()


# -- CPUs -----------------------------------------------------------------

def _cpuinfo(io):
    """(logical CPU -> APIC id, the first CPU model name or None). /proc/cpuinfo lists online CPUs only."""
    apic, current, model = {}, None, None
    text = io.read('/proc/cpuinfo', '') or ''
    for line in text.splitlines():
        key, _sep, value = line.partition(':')
        key = key.strip()
        if key == 'processor':
            current = int(value)
        elif key == 'apicid' and current is not None:
            apic[current] = int(value)
        elif key == 'model name' and model is None:
            model = value.strip() or None
    return apic, model


def _llc_domains(io, cpus):
    """{cpu: its last-level cache domain as a cpulist} from cpuN/cache/index3/shared_cpu_list, or None.

    Read once per domain: the CPUs a list names get it without their own read. An offline CPU has no
    cache directory on x86, and the kernel drops it from its siblings' lists.
    """
    found = {}
    for cpu in sorted(cpus):
        if cpu in found:
            continue
        text = io.read('%s/cpu%d/cache/index3/shared_cpu_list' % (CPU_ROOT, cpu))
        try:
            members = parse_cpulist(text) if text else set()
        except CpulistError:
            members = set()
        if cpu not in members:
            found[cpu] = None
            continue
        domain = format_cpulist(members)
        for member in members:
            found.setdefault(member, domain)
    return found


def cpu_state(io):
    """The cheap part of CPU facts: the four sysfs cpulists."""
    possible = _cpulist(io, CPU_ROOT + '/possible')
    return {
        'possible': possible,
        'present': _cpulist(io, CPU_ROOT + '/present'),
        'online': _cpulist(io, CPU_ROOT + '/online'),
        'last_cpu': max(possible) if possible else None,
    }


def cpu_facts(io):
    state = cpu_state(io)
    apic, model = _cpuinfo(io)
    llc = _llc_domains(io, state['present'] & state['online'])
    node_of = {}
    for node in _node_ids(io):
        for cpu in _cpulist(io, '%s/node%d/cpulist' % (NODE_ROOT, node)):
            node_of[cpu] = node
    # Offline CPUs lose their topology directory; reuse what we saw while they were online.
    cache = _state.load(io, _state.CPU_TOPOLOGY)
    cpus = []
    for cpu in sorted(state['present']):
        base = '%s/cpu%d' % (CPU_ROOT, cpu)
        online_file = io.read(base + '/online')
        hotpluggable = online_file is not None
        online = cpu in state['online']
        topo = None
        if io.isdir(base + '/topology'):
            topo = {
                'package': io.read_int(base + '/topology/physical_package_id'),
                'die': io.read_int(base + '/topology/die_id'),
                'core': io.read_int(base + '/topology/core_id'),
                'thread_siblings': io.read(base + '/topology/thread_siblings_list'),
                'core_cpus': io.read(base + '/topology/core_cpus_list'),
                'apic_id': apic.get(cpu),
                'source': 'sysfs',
            }
        elif str(cpu) in cache:
            topo = dict(cache[str(cpu)], source='cached')
        if cpu not in node_of:
            # x86 drops an offline CPU from its node's cpulist; the cpuN/nodeM link stays.
            linked = [n for n in io.listdir(base) if n.startswith('node') and n[4:].isdigit()]
            node_of[cpu] = int(linked[0][4:]) if linked else None
        entry = {
            'id': cpu,
            'online': online,
            'hotpluggable': hotpluggable,
            'node': node_of[cpu],
        }
        for key in ('apic_id', 'package', 'die', 'core', 'thread_siblings', 'core_cpus'):
            entry[key] = topo.get(key) if topo else None
        entry['topology_source'] = topo['source'] if topo else None
        entry['llc'] = llc.get(cpu) or (topo or {}).get('llc')
        cpus.append(entry)
    boot = [c['id'] for c in cpus if not c['hotpluggable']]
    return {
        'possible': format_cpulist(state['possible']),
        'present': format_cpulist(state['present']),
        'online': format_cpulist(state['online']),
        'offline': format_cpulist(state['possible'] - state['online']),
        'boot_cpus': format_cpulist(boot),
        'smt_control': io.read(CPU_ROOT + '/smt/control'),
        'isolated': io.read(CPU_ROOT + '/isolated'),
        'nohz_full': io.read(CPU_ROOT + '/nohz_full'),
        'model': model,
        'list': cpus,
    }


def smt_groups(cpu_list):
    """Groups of SMT siblings keyed by (package, die, core), from CPU facts entries."""
    groups = {}
    for cpu in cpu_list:
        if cpu['core'] is None:
            groups[('cpu', cpu['id'])] = {cpu['id']}
            continue
        groups.setdefault((cpu['package'], cpu['die'], cpu['core']), set()).add(cpu['id'])
    return groups


# -- NUMA -----------------------------------------------------------------

def _node_ids(io):
    return sorted(int(n[4:]) for n in io.listdir(NODE_ROOT) if n.startswith('node') and n[4:].isdigit())


def _node_meminfo(io, node):
    info = {}
    for line in (io.read('%s/node%d/meminfo' % (NODE_ROOT, node), '') or '').splitlines():
        # "Node 0 MemTotal:       512000 kB"
        parts = line.split()
        if len(parts) >= 4:
            info[parts[2].rstrip(':')] = int(parts[3]) * 1024
    return info


def numa_facts(io):
    nodes = []
    for node in _node_ids(io):
        info = _node_meminfo(io, node)
        distance = io.read('%s/node%d/distance' % (NODE_ROOT, node), '') or ''
        nodes.append({
            'id': node,
            'cpus': format_cpulist(_cpulist(io, '%s/node%d/cpulist' % (NODE_ROOT, node))),
            'mem_total': info.get('MemTotal'),
            'mem_free': info.get('MemFree'),
            'distances': [int(d) for d in distance.split()],
        })
    return {'nodes': nodes, 'online': io.read(NODE_ROOT + '/online')}


# -- Memory blocks ----------------------------------------------------------

def memory_facts(io):
    size_hex = io.read(MEM_ROOT + '/block_size_bytes')
    block_size = int(size_hex, 16) if size_hex else None
    # One listdir per node is far cheaper than probing a link in every block.
    node_of = {}
    for node in _node_ids(io):
        for name in io.listdir('%s/node%d' % (NODE_ROOT, node)):
            if name.startswith('memory') and name[6:].isdigit():
                node_of[int(name[6:])] = node
    # Since Linux 5.x "removable" only says whether the kernel can offline at all,
    # the same for every block: read it once instead of once per block.
    removable = None
    blocks = []
    for name in io.listdir(MEM_ROOT):
        if not (name.startswith('memory') and name[6:].isdigit()):
            continue
        block = int(name[6:])
        base = MEM_ROOT + '/' + name
        start = block * block_size if block_size else None
        if removable is None:
            removable = io.read_int(base + '/removable', default=-1)
        blocks.append({
            'id': block,
            'start': start,
            'end': start + block_size - 1 if block_size else None,
            'state': io.read(base + '/state'),
            'valid_zones': (io.read(base + '/valid_zones') or '').split(),
            'removable': removable if removable != -1 else None,
            'node': node_of.get(block),
        })
    blocks.sort(key=lambda b: b['id'])
    return {
        'block_size': block_size,
        'auto_online_blocks': io.read(MEM_ROOT + '/auto_online_blocks'),
        'blocks': blocks,
    }


# -- Reservations ---------------------------------------------------------

def parse_iomem(text):
    """Parse /proc/iomem into (depth, start, end, name) entries (root sees real addresses)."""
    entries = []
    for line in text.splitlines():
        if ':' not in line:
            continue
        span, _sep, name = line.partition(' : ')
        depth = (len(span) - len(span.lstrip(' '))) // 2
        start, _sep, end = span.strip().partition('-')
        try:
            entries.append((depth, int(start, 16), int(end, 16), name.strip()))
        except ValueError:
            continue
    return entries


def meminfo(io):
    info = {}
    for line in (io.read('/proc/meminfo', '') or '').splitlines():
        parts = line.split()
        if len(parts) >= 2:
            value = int(parts[1])
            info[parts[0].rstrip(':')] = value * 1024 if len(parts) > 2 else value
    return info


def reservation_facts(io):
    entries = parse_iomem(io.read('/proc/iomem', '') or '')
    wanted = ('Reserved', 'reserved', 'Crash kernel', 'Persistent Memory', 'Persistent Memory (legacy)',
              'Multikernel Memory Pool', 'System RAM', 'Kernel code', 'Kernel data', 'Kernel bss')
    ranges = [{'name': name, 'start': start, 'end': end, 'size': end - start + 1, 'depth': depth}
              for depth, start, end, name in entries if name in wanted]
    info = meminfo(io)
    return {
        'iomem': ranges,
        'crash_kernel': [r for r in ranges if r['name'] == 'Crash kernel'],
        'cma_total': info.get('CmaTotal'),
        'cma_free': info.get('CmaFree'),
        'mem_total': info.get('MemTotal'),
        'mem_available': info.get('MemAvailable'),
    }


# -- kexec ----------------------------------------------------------------

def _kexec_attr(io, name):
    # A 2025 series moves these under /sys/kernel/kexec/; probe both.
    value = io.read('/sys/kernel/kexec/' + name)
    if value is None:
        value = io.read('/sys/kernel/kexec_' + name)
    return value


def kexec_facts(io):
    lockdown = io.read('/sys/kernel/security/lockdown')
    mode = None
    if lockdown:
        match = re.search(r'\[(\w+)\]', lockdown)
        mode = match.group(1) if match else lockdown
    crash_size = _kexec_attr(io, 'crash_size')
    return {
        'loaded': _kexec_attr(io, 'loaded') == '1',
        'crash_loaded': _kexec_attr(io, 'crash_loaded') == '1',
        'crash_size': int(crash_size) if crash_size and crash_size.isdigit() else None,
        'kexec_load_disabled': io.read('/proc/sys/kernel/kexec_load_disabled') == '1',
        'lockdown': mode,
    }


# -- Kernel ---------------------------------------------------------------

def _kernel_config(io, release):
    text = io.read('/boot/config-%s' % release)
    source = '/boot/config-%s' % release
    if text is None and io.exists('/proc/config.gz'):
        try:
            text = gzip.decompress(io.read_bytes('/proc/config.gz')).decode()
            source = '/proc/config.gz'
        except (IOError, OSError, ValueError):
            text = None
    if text is None:
        return None, None
    config = {}
    for line in text.splitlines():
        if line.startswith('CONFIG_') and '=' in line:
            key, _sep, value = line.partition('=')
            config[key[7:]] = value
    return config, source


def bootloader(io):
    firmware = 'efi' if io.isdir('/sys/firmware/efi') else 'bios'
    if io.exists('/boot/loader/entries') and (io.exists('/usr/sbin/grubby') or io.exists('/sbin/grubby')):
        kind = 'grub-bls'
    elif io.exists('/boot/grub/grub.cfg') or io.exists('/boot/grub2/grub.cfg'):
        kind = 'grub'
    elif io.exists('/boot/efi/loader/loader.conf') or io.exists('/efi/loader/loader.conf'):
        kind = 'systemd-boot'
    else:
        kind = 'none'
    return {'type': kind, 'firmware': firmware, 'update_grub': io.exists('/usr/sbin/update-grub')}


def running_cmdline(io):
    return split_cmdline(io.read('/proc/cmdline', '') or '')


def kernel_facts(io):
    release = io.read('/proc/sys/kernel/osrelease')
    config, source = _kernel_config(io, release)
    options = {}
    for name in KERNEL_OPTIONS:
        options[name] = config.get(name, 'n') if config is not None else None
    cmdline = running_cmdline(io)
    return {
        'release': release,
        'version': io.read('/proc/sys/kernel/version'),
        'config': options,
        'config_source': source,
        'cmdline': cmdline,
        'booted_by_bootloader': any(t.startswith('BOOT_IMAGE=') for t in cmdline),
        'bootloader': bootloader(io),
    }


# -- Parker kernfs --------------------------------------------------------
# The readers live in _parker; these names stay for the modules and tests that import them from here.

parker_facts = _parker.parker_facts
parker_claims = _parker.parker_claims
claims_of = _parker.claims_of
blocked_starts = _parker.blocked_starts
blocked_message = _parker.blocked_message


GATHERERS = {
    'cpus': cpu_facts,
    'numa': numa_facts,
    'memory': memory_facts,
    'reservations': reservation_facts,
    'pci': pci_facts,
    'kexec': kexec_facts,
    'kernel': kernel_facts,
}


def gather(io, subsets=SUBSETS, parker_root=PARKER_ROOT):
    facts = {}
    for name in subsets:
        if name == 'parker':
            facts['parker'] = parker_facts(io, parker_root)
            facts['parker']['cma'] = _parker.cma_areas(io)
        else:
            facts[name] = GATHERERS[name](io)
    if 'pci' in facts:
        # A claimed device keeps its host driver's link on a real kernel: say who holds it.
        parker = facts.get('parker') or parker_facts(io, parker_root)
        owners = _parker.claimed_by(parker)
        for dev in facts['pci']['devices']:
            dev['claimed_by'] = owners.get(dev['address'])
    return facts
