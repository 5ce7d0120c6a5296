# -*- coding: utf-8 -*-
# Copyright (c) parker.kernel contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# This module util is PRIVATE to the parker.kernel collection.
# It can have breaking changes at any time.

"""Memory reservation for parker.kernel.mem_reserve.

Runtime mode offlines or onlines memory blocks. Boot mode validates the
reservation tokens (parker_cma=, memmap=, crashkernel=) against the host and
says whether the running kernel already honours them; it writes nothing.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import errno
import re

from ansible_collections.parker.kernel.plugins.module_utils._cpulist import parse_cpus, format_cpulist as _ids, CpulistError
from ansible_collections.parker.kernel.plugins.module_utils._cmdline import memparse, format_size, format_memmap, SizeError
from ansible_collections.parker.kernel.plugins.module_utils._common import Refused, refuse_all, diff_of
from ansible_collections.parker.kernel.plugins.module_utils import _facts, _parker, _state, _steps

ONLINE_WRITE = {'movable': 'online_movable', 'kernel': 'online_kernel', 'auto': 'online'}
GIB = 1 << 30
PAGE = 4096


def block_ranges(blocks, block_size):
    """Merge block ids into contiguous physical ranges, in the form a partition receives memory."""
    ranges = []
    for block in sorted(blocks):
        start = block * block_size
        if ranges and ranges[-1]['end'] + 1 == start:
            ranges[-1]['end'] = start + block_size - 1
        else:
            ranges.append({'start': start, 'end': start + block_size - 1})
    for item in ranges:
        item['size'] = item['end'] - item['start'] + 1
        item['memmap'] = format_memmap(item['size'], item['start'])
    return ranges


def _parse_range(text, block_size):
    """'0x100000000-0x10fffffff' or '256M@0x100000000' -> (start, end_inclusive)."""
    text = str(text).strip()
    try:
        if '@' in text:
            size_text, _sep, start_text = text.partition('@')
            start, size = memparse(start_text), memparse(size_text)
            end = start + size - 1
        else:
            start_text, sep, end_text = text.partition('-')
            if not sep:
                raise SizeError(text)
            start, end = memparse(start_text), memparse(end_text)
    except SizeError:
        raise Refused('ranges: malformed range %r (use START-END or SIZE@START)' % text)
    if end < start:
        raise Refused('ranges: %r runs backwards' % text)
    if start % block_size or (end + 1) % block_size:
        raise Refused('ranges: %r is not aligned to the memory block size 0x%x' % (text, block_size))
    return start, end


def select_blocks(params, mem, saved):
    """Resolve blocks/ranges/size+node into block ids (pure). Returns (ids, how)."""
    by_id = dict((b['id'], b) for b in mem['blocks'])
    bs = mem['block_size']
    if params.get('blocks') is not None:
        try:
            ids = parse_cpus(params['blocks'])
        except CpulistError as exc:
            raise Refused('blocks: %s' % str(exc).replace('cpulist', 'block list'))
        how = 'blocks'
    elif params.get('ranges'):
        ids = set()
        for item in params['ranges']:
            start, end = _parse_range(item, bs)
            ids.update(range(start // bs, (end + 1) // bs))
        how = 'ranges'
    elif params.get('size') is not None:
        try:
            size = memparse(params['size'])
        except SizeError as exc:
            raise Refused('size: %s' % exc)
        if size == 0 or size % bs:
            raise Refused('size %s is not a multiple of the memory block size %s (0x%x)'
                          % (params['size'], format_size(bs), bs))
        node = params.get('node')
        want = size // bs
        previous = saved.get(params['name'])
        if previous and previous.get('node') == node and len(previous.get('blocks', [])) == want:
            # Already taken by an earlier run under this name: same blocks, no change.
            return set(previous['blocks']), 'size'
        if params['state'] == 'online':
            # Nothing recorded under this name: it was already returned (or never taken).
            return set(previous['blocks']) if previous else set(), 'size'
        if previous and (previous.get('node') != node or len(previous.get('blocks', [])) != want):
            raise Refused('reservation %r already holds blocks %s; return it (state=online) before taking a '
                          'different size or node' % (params['name'], _ids(previous['blocks'])))
        candidates = [b for b in mem['blocks']
                      if (node is None or b['node'] == node) and b['state'] == 'online'
                      and 'Movable' in b['valid_zones'] and b['removable'] != 0]
        # Highest addresses first: hot-plugged and movable memory sits at the top.
        candidates.sort(key=lambda b: b['id'], reverse=True)
        if len(candidates) < want:
            raise Refused('node %s has %d online Movable block(s) of %s; %s needs %d'
                          % (node, len(candidates), format_size(bs), params['size'], want))
        return set(b['id'] for b in candidates[:want]), 'size'
    elif params['state'] == 'online' and params['name'] in saved:
        return set(saved[params['name']]['blocks']), 'name'
    else:
        raise Refused('give one of blocks, ranges or size')
    missing = sorted(ids - set(by_id))
    if missing:
        raise Refused('memory blocks %s do not exist (block size 0x%x)' % (_ids(missing), bs))
    return ids, how


def block_steps(blocks, by_id, state, online_type='movable', busy_timeout=30.0):
    """Steps offlining (state offline) or onlining memory blocks, each read back and undone on a later
    failure (pure). ``by_id`` maps a block id to its memory_facts entry (for the zone to online it into)."""
    steps = []
    for block in sorted(blocks):
        path = '%s/memory%d/state' % (_facts.MEM_ROOT, block)
        if state == 'offline':
            undo = 'online_movable' if 'Movable' in by_id[block]['valid_zones'] else 'online'
            steps.append(_steps.write(path, 'offline', undo=undo, expect='offline',
                                      retry=(errno.EBUSY, errno.EAGAIN), retry_timeout=busy_timeout))
        else:
            steps.append(_steps.write(path, ONLINE_WRITE[online_type], undo='offline', expect='online',
                                      retry=(errno.EBUSY, errno.EAGAIN), retry_timeout=busy_timeout))
    return steps


def run_mem_reserve(params, io, txn):
    if params['mode'] == 'boot':
        return boot_plan(params, boot_facts(io))
    mem = _facts.memory_facts(io)
    if not mem['block_size']:
        raise Refused('no memory hotplug interface at /sys/devices/system/memory')
    # "removable" is 0 everywhere when the kernel lacks CONFIG_MEMORY_HOTREMOVE; cheaper than parsing its config.
    if params['state'] == 'offline' and mem['blocks'] and mem['blocks'][0]['removable'] == 0:
        raise Refused('this kernel cannot offline memory (CONFIG_MEMORY_HOTREMOVE is off)')
    saved = _state.load(io, _state.MEMORY)
    ids, how = select_blocks(params, mem, saved)
    by_id = dict((b['id'], b) for b in mem['blocks'])
    bs = mem['block_size']
    offline_state = params['state'] == 'offline'
    if offline_state:
        to_change = sorted(b for b in ids if by_id[b]['state'] != 'offline')
    else:
        to_change = sorted(b for b in ids if by_id[b]['state'] == 'offline')

    problems = []
    if offline_state:
        unmovable = [b for b in to_change if by_id[b]['valid_zones'] in (['none'], [])]
        if unmovable:
            problems.append('memory blocks %s span several zones or holes (valid_zones none) and cannot be offlined'
                            % _ids(unmovable))
        avail = _facts.meminfo(io).get('MemAvailable')
        if avail is not None and len(to_change) * bs > avail and not params['force']:
            problems.append('offlining %s would take more than MemAvailable (%s)'
                            % (format_size(len(to_change) * bs), format_size(avail)))
    refuse_all(problems)

    steps = block_steps(to_change, by_id, params['state'], params['online_type'], float(params['busy_timeout']))
    _steps.apply(txn, steps)
    _steps.verify(io, txn, steps, 'memory block state')
    if to_change or (offline_state and how == 'size' and params['name'] not in saved):
        record = dict(saved)
        if offline_state:
            record[params['name']] = {'node': params.get('node'), 'blocks': sorted(ids)}
        else:
            record.pop(params['name'], None)
        if record != saved:
            txn.save_json(_state.MEMORY, record)

    def states(changed):
        return '\n'.join('memory%d %s' % (b, params['state'] if b in changed else by_id[b]['state'])
                         for b in sorted(ids))
    return {
        'changed': bool(to_change),
        'blocks': sorted(ids),
        'changed_blocks': to_change,
        'block_size': bs,
        'ranges': block_ranges(ids, bs),
        'size': len(ids) * bs,
        'diff': diff_of('/sys/devices/system/memory', states(()), states(set(to_change))),
    }


# -- boot mode ------------------------------------------------------------

_MEMMAP = re.compile(r'^(?P<size>[0-9a-fA-Fx]+[KMGTPEkmgtpe]?)(?P<kind>[@#$!])(?P<addr>[0-9a-fA-Fx]+[KMGTPEkmgtpe]?)$')


def _overlaps(a_start, a_end, b_start, b_end):
    return a_start <= b_end and b_start <= a_end


def _check_parker_cma(value, numa, problems):
    """Return {node: size} as the RFC's rule reserves it on this host's nodes, appending problems."""
    nodes = dict((n['id'], n) for n in numa['nodes']) or {0: {'id': 0, 'mem_total': None}}
    layout = _parker.expected_layout(value, sorted(nodes))
    problems.extend(layout['problems'])
    # A share the kernel would drop is a token that does not do what it says: refused here, before a reboot.
    problems.extend(layout['warnings'])
    for nid, size in sorted(layout['areas'].items()):
        total = nodes[nid].get('mem_total')
        if total is not None and size > total:
            problems.append('parker_cma=%s: node %d needs %s (rounded up to 1G) but has %s'
                            % (value, nid, format_size(size), format_size(total)))
    if not layout['problems'] and not layout['areas']:
        problems.append('parker_cma=%s: reserves no area on this host' % value)
    return layout['areas']


def cma_units(size):
    """Bytes of a Parker CMA area one allocation uses: its bitmap counts whole GiB
    (order_per_bit = 30 - PAGE_SHIFT), so cma_alloc rounds every request up to 1G."""
    return -(-int(size) // GIB) * GIB


def boot_facts(io):
    """What boot_plan checks reservations against, read once."""
    return {'numa': _facts.numa_facts(io), 'reservations': _facts.reservation_facts(io),
            'kexec': _facts.kexec_facts(io), 'cmdline': _facts.running_cmdline(io), 'cma': _parker.cma_areas(io)}


def boot_plan(params, facts):
    """Validate parker_cma=, memmap= and crashkernel= against the host and say whether the running kernel
    honours them (pure; ``facts`` from boot_facts). Writes nothing: they take effect at the next boot."""
    numa, res, kexec = facts['numa'], facts['reservations'], facts['kexec']
    running = set(facts['cmdline'])
    ram = [r for r in res['iomem'] if r['name'] == 'System RAM']
    kernel_image = [r for r in res['iomem'] if r['name'] in ('Kernel code', 'Kernel data', 'Kernel bss')]
    problems, warnings, tokens, honoured = [], [], [], {}

    expected = actual = None
    if params.get('parker_cma'):
        value = str(params['parker_cma'])
        token = 'parker_cma=' + value
        expected = _check_parker_cma(value, numa, problems)
        tokens.append(token)
        # What the kernel reserved this boot (read now, never cached: physical KASLR changes it).
        actual = facts['cma']
        if actual is not None and actual['known']:
            warnings.extend(actual['warnings'])
            honoured[token] = token in running and any(a['size'] for a in actual['areas'])
        else:
            cma_total = res['cma_total'] or 0
            honoured[token] = token in running and cma_total >= sum(expected.values()) > 0

    seen = []
    for entry in params.get('memmap') or []:
        entry = str(entry)
        token = 'memmap=' + entry
        tokens.append(token)
        if entry == 'exactmap':
            problems.append('memmap=exactmap replaces the whole firmware map; it belongs on an Application Kernel '
                            'line, not on the Boot Kernel')
            continue
        match = _MEMMAP.match(entry)
        if not match:
            problems.append('memmap=%s: malformed; use SIZE$ADDR, SIZE@ADDR, SIZE#ADDR or SIZE!ADDR' % entry)
            continue
        try:
            size, addr = memparse(match.group('size')), memparse(match.group('addr'))
        except SizeError:
            problems.append('memmap=%s: malformed size or address' % entry)
            continue
        end = addr + size - 1
        if size == 0 or size % PAGE or addr % PAGE:
            problems.append('memmap=%s: size and address must be multiples of 4K' % entry)
            continue
        for other_entry, other_start, other_end in seen:
            if _overlaps(addr, end, other_start, other_end):
                problems.append('memmap=%s overlaps memmap=%s' % (entry, other_entry))
        seen.append((entry, addr, end))
        already = any(r['name'].lower() == 'reserved' and r['start'] <= addr and r['end'] >= end
                      for r in res['iomem'])
        if match.group('kind') in '$!' and not already:
            if not any(r['start'] <= addr and r['end'] >= end for r in ram):
                problems.append('memmap=%s: 0x%x-0x%x is not inside one System RAM range of this host'
                                % (entry, addr, end))
            for r in kernel_image + res['crash_kernel']:
                if _overlaps(addr, end, r['start'], r['end']):
                    problems.append('memmap=%s overlaps %s at 0x%x-0x%x, which the running kernel uses'
                                    % (entry, r['name'], r['start'], r['end']))
        honoured[token] = token in running and (already or match.group('kind') not in '$!')

    if params.get('crashkernel'):
        value = str(params['crashkernel'])
        token = 'crashkernel=' + value
        tokens.append(token)
        size = None
        try:
            base = value.split('@', 1)[0]
            base = re.sub(r',(high|low|cma)$', '', base)
            if ':' in base:
                for rule in base.split(','):
                    span, _sep, rule_size = rule.partition(':')
                    low, _sep, high = span.partition('-')
                    memparse(low)
                    if high:
                        memparse(high)
                    memparse(rule_size)
            else:
                size = memparse(base)
        except SizeError:
            problems.append('crashkernel=%s: malformed; use SIZE[@OFFSET], SIZE,high|low or RANGE:SIZE,...' % value)
        total = res['mem_total']
        if size is not None and total and size >= total // 2:
            problems.append('crashkernel=%s: %s is half or more of this host\'s memory (%s)'
                            % (value, format_size(size), format_size(total)))
        crash = kexec['crash_size'] or 0
        honoured[token] = token in running and crash > 0 and (size is None or crash == size)

    if not tokens:
        problems.append('mode=boot needs at least one of parker_cma, memmap or crashkernel')
    refuse_all(problems)
    reboot_required = not all(honoured.values())
    return {
        'changed': False,
        'tokens': tokens,
        'honoured': honoured,
        'reboot_required': reboot_required,
        'cma_expected': ([{'node': n, 'size': size} for n, size in sorted(expected.items())]
                         if expected is not None else None),
        'cma_areas': actual,
        'warnings': warnings,
    }
