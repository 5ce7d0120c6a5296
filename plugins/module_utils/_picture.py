# -*- coding: utf-8 -*-
# Copyright (c) parker.kernel contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# This module util is PRIVATE to the parker.kernel collection.
# It can have breaking changes at any time.

"""Pictures of plans: an SVG per host or hardware class, and the fleet's index.html (pure string building).

``host_svg(facts, plan)`` draws socket -> NUMA node -> last-level cache domain -> core -> SMT thread, each
thread coloured by who owns it (the Boot Kernel's housekeeping cores, each partition, CPUs left to the Boot
Kernel, CPUs a partition outside the plan holds), a memory bar per node, and each node's PCI devices with
their owner. ``class_svg`` is the same picture for a hardware class (one representative host).
``fleet_index`` writes one self-contained HTML page (no external assets, works from file://) listing any
number of hosts: the list is searchable and virtual (only the rows on screen exist in the DOM), and a host's
picture is loaded when it is selected. No dependencies, no I/O: the caller writes the strings.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json

from ansible_collections.parker.kernel.plugins.module_utils._cpulist import parse_cpulist, format_cpulist, CpulistError
from ansible_collections.parker.kernel.plugins.module_utils._cmdline import memparse, format_size, SizeError
from ansible_collections.parker.kernel.plugins.module_utils import _fingerprint, _topology

# Colour-blind-safe partition colours (Tableau 10 order), then generated hues.
PALETTE = ('#4e79a7', '#f28e2b', '#59a14f', '#e15759', '#76b7b2', '#edc948', '#b07aa1', '#ff9da7', '#9c755f',
           '#86bcb6')
HOUSEKEEPING = '#39424e'
BOOT_FREE = '#dfe3e8'
HELD = '#9aa1ab'
FONT = "font-family='DejaVu Sans, Helvetica, Arial, sans-serif'"
GAP, PAD = 3, 10
MAX_WIDTH = 1400
CHAR = 6.1   # average glyph width at 11 px


def esc(text):
    return (str(text).replace('&', '&amp;').replace('<', '&lt;').replace('>', '&gt;').replace('"', '&quot;')
            .replace("'", '&#39;'))


def colour(index):
    if index < len(PALETTE):
        return PALETTE[index]
    hue = (index * 137.508) % 360
    return 'hsl(%d,55%%,52%%)' % hue


_NARROW = frozenset("iljtf.,:;|!'()[] 1-/")
_WIDE = frozenset('MWmw@%')


def _width(text, size=11, bold=False):
    """About how wide DejaVu Sans draws ``text`` at ``size`` px."""
    em = 0.0
    for char in str(text):
        if char in _NARROW:
            em += 0.33
        elif char in _WIDE:
            em += 0.92
        elif char.isupper():
            em += 0.72
        elif char.isdigit():
            em += 0.64
        else:
            em += 0.62
    # Small text is hinted to whole pixels, which widens it a little.
    return em * size * (1.1 if bold else 1.0) * (1.07 if size <= 10 else 1.0)


def _fit(text, width, char=CHAR):
    """Cut text to about ``width`` pixels."""
    text = str(text)
    room = max(1, int(width / char))
    return text if len(text) <= room else text[:max(1, room - 1)] + '\u2026'


def _cpus(text):
    try:
        return parse_cpulist(text or '')
    except (CpulistError, ValueError):
        return set()


def _bytes(text):
    try:
        return memparse(text)
    except (SizeError, ValueError):
        return 0


def _gib(size):
    if not size:
        return '0'
    if size % (1 << 30) == 0 or size >= 100 << 30:
        return '%dG' % round(size / float(1 << 30))
    if size >= 1 << 30:
        return '%.1fG' % (size / float(1 << 30))
    return format_size(size - size % (1 << 20)) if size >= 1 << 20 else format_size(size)


class _Owners(object):
    """Who owns each CPU and device, and the legend's entries, from the facts and the plan."""

    def __init__(self, facts, plan):
        self.cpu = {}
        self.device = {}
        self.entries = []     # (key, label, detail, colour)
        self.colour = {'hk': HOUSEKEEPING, 'boot': BOOT_FREE, 'held': HELD}
        parts = (plan or {}).get('partitions') or []
        placement = dict((p['name'], p) for p in (plan or {}).get('placement') or [])
        for cpu in _cpus(((plan or {}).get('housekeeping') or {}).get('cpus')):
            self.cpu[cpu] = 'hk'
        self.memory = {}      # node -> [(owner, bytes)]
        for index, part in enumerate(parts):
            key = 'p:' + part['name']
            self.colour[key] = colour(index)
            for cpu in _cpus(part.get('cpus')):
                self.cpu[cpu] = key
            for address in part.get('devices') or []:
                self.device[address] = key
            where = placement.get(part['name'], {})
            size = _bytes(part.get('memory'))
            node = where.get('memory_node')
            self.memory.setdefault(node, []).append((key, size))
            threads = len(_cpus(part.get('cpus')))
            detail = '%s core%s, %d CPUs, %s, %d device%s' % (
                where.get('cores', '?'), '' if where.get('cores') == 1 else 's', threads, part.get('memory'), len(part.get('devices') or []),
                '' if len(part.get('devices') or []) == 1 else 's')
            if where.get('nodes') is not None:
                detail += ', node%s %s' % ('s' if len(where['nodes']) > 1 else '',
                                           ','.join(str(n) for n in where['nodes']))
            self.entries.append((key, part['name'], detail, self.colour[key]))
        self.names = dict((p['name'], True) for p in parts)
        self.holder = {}
        for held in ((facts.get('parker') or {}).get('partitions')) or []:
            if held.get('name') in self.names:
                continue
            for cpu in _cpus(held.get('cpus')):
                self.cpu.setdefault(cpu, 'held')
            for address in held.get('devices') or []:
                self.device.setdefault(address, 'held')
                self.holder.setdefault(address, held.get('name'))

    def finish(self):
        """CSS class and escaped label per owner key, for the drawing loops."""
        self.css = {'hk': 'hk', 'boot': 'bf', 'held': 'hd'}
        self.escaped = dict((key, esc(self.label(key))) for key in ('hk', 'boot', 'held'))
        for number, (key, _label, _detail, _fill) in enumerate(self.entries):
            self.css[key] = 'p%d' % number
            self.escaped[key] = esc(self.label(key))
        return self

    def style(self):
        rules = ['.hk{fill:%s}.bf{fill:%s}.hd{fill:%s}' % (HOUSEKEEPING, BOOT_FREE, HELD),
                 '.co{fill:none;stroke:#3e4c59;stroke-opacity:.35}.sp{stroke:#fff;stroke-width:1}',
                 '.ht{stroke:#fff;stroke-width:1.2}']
        rules.extend('.%s{fill:%s;fill-opacity:.9}' % (self.css[key], fill) for key, _l, _d, fill in self.entries)
        return '<style>%s</style>' % ''.join(rules)

    def label(self, key):
        if key == 'hk':
            return 'Boot Kernel (housekeeping)'
        if key == 'boot':
            return 'Boot Kernel'
        if key == 'held':
            return 'held by a partition outside the plan'
        return key[2:]


class _Svg(object):
    def __init__(self):
        self.parts = []

    def add(self, text):
        self.parts.append(text)

    def rect(self, x, y, w, h, fill, stroke=None, rx=0, extra=''):
        self.parts.append("<rect x='%g' y='%g' width='%g' height='%g' fill='%s'%s%s%s/>" % (
            x, y, w, h, fill, (" stroke='%s'" % stroke) if stroke else '', (" rx='%g'" % rx) if rx else '', extra))

    def text(self, x, y, value, size=11, fill='#1f2933', weight=None, anchor=None, extra=''):
        self.parts.append("<text x='%g' y='%g' font-size='%g' fill='%s'%s%s%s>%s</text>" % (
            x, y, size, fill, (" font-weight='%s'" % weight) if weight else '',
            (" text-anchor='%s'" % anchor) if anchor else '', extra, esc(value)))


def _llc_columns(cores):
    if cores <= 8:
        return max(1, cores)
    return 8 if cores <= 24 else 16


def _core_width(threads, cell):
    return cell if threads <= 2 else cell + 4 * (threads - 2)


def _node_layout(topo, node, cell):
    """LLC boxes of a node: [(group index, x, y, w, h, columns)], panel inner width and height."""
    groups = [i for i, g in enumerate(topo.groups) if g[0] == node]
    max_threads = max(len(topo.cores[i]) for i in topo.node_cores[node])
    cw = _core_width(max_threads, cell)
    boxes = []
    for gi in groups:
        group = topo.groups[gi]
        count = group[3] - group[2]
        cols = _llc_columns(count)
        rows = -(-count // cols)
        w = 2 * 6 + cols * (cw + GAP) - GAP
        h = 16 + rows * (cell + GAP) - GAP + 6
        boxes.append([gi, 0, 0, w, h, cols])
    inner = max(b[3] for b in boxes)
    if len(boxes) > 1:
        inner = max(inner, boxes[0][3] + boxes[1][3] + 8)
    inner = max(inner, 300)
    x = y = row_h = 0
    for box in boxes:
        if x and x + box[3] > inner:
            x, y = 0, y + row_h + 8
            row_h = 0
        box[1], box[2] = x, y
        x += box[3] + 8
        row_h = max(row_h, box[4])
    return boxes, inner, y + row_h, cw


def _devices_of(facts):
    by_node = {}
    for dev in (facts.get('pci') or {}).get('devices') or []:
        klass = (dev.get('class') or '').lower().replace('0x', '')
        if klass.startswith('06'):
            continue
        node = dev.get('numa_node')
        node = node if isinstance(node, int) and not isinstance(node, bool) and node >= 0 else None
        by_node.setdefault(node, []).append(dev)
    for node in by_node:
        by_node[node].sort(key=lambda d: d.get('address'))
    return by_node


def _device_owner(dev, owners):
    key = owners.device.get(dev.get('address'))
    if key == 'held':
        return key, 'held by %s' % (owners.holder.get(dev.get('address')) or dev.get('claimed_by'))
    if key:
        return key, owners.label(key)
    flags = [label for flag, label in (('ssh', 'SSH'), ('default_route', 'default route'), ('root_fs', 'root fs'))
             if dev.get(flag)]
    if flags or dev.get('in_use'):
        return 'hk', 'Boot Kernel: ' + (', '.join(flags) if flags else 'in use')
    if dev.get('claimed_by'):
        return 'held', 'held by %s' % dev['claimed_by']
    return 'boot', 'Boot Kernel (free)'


def _draw_node(svg, topo, facts, owners, node, x0, y0, devices, memory_total, cell):
    boxes, inner, cores_h, cw = _node_layout(topo, node, cell)
    width = inner + 2 * PAD
    y = y0 + PAD
    count = len(topo.node_cores[node])
    cpus = sum(len(topo.cores[i]) for i in topo.node_cores[node])
    svg.text(x0 + PAD, y + 11, 'node %s' % node, size=12, weight='bold')
    svg.text(x0 + PAD + 52, y + 11, '%d core%s \u00b7 %d CPUs \u00b7 %s'
             % (count, '' if count == 1 else 's', cpus, _gib(memory_total)),
             size=11, fill='#52606d')
    y += 20
    for gi, bx, by, bw, bh, cols in boxes:
        group = topo.groups[gi]
        gx, gy = x0 + PAD + bx, y + by
        svg.rect(gx, gy, bw, bh, '#f5f7fa', '#cbd2d9', rx=4)
        members = range(group[2], group[3])
        label_cpus = format_cpulist(_topology.core_cpus(topo, members))
        if topo.llc_shown:
            name = ('die %d \u00b7 ' % topo.groups[gi][1] if topo.die_shown else '') + 'L3'
        else:
            name = ('die %d \u00b7 ' % topo.groups[gi][1]) if topo.die_shown else 'cores'
        svg.text(gx + 6, gy + 11, _fit('%s  %s' % (name, label_cpus), bw - 10, 5.4), size=9, fill='#616e7c')
        step_x, step_y = cw + GAP, cell + GAP
        add = svg.parts.append
        for k, core in enumerate(members):
            cx = gx + 6 + (k % cols) * step_x
            cy = gy + 16 + (k // cols) * step_y
            threads = topo.cores[core]
            keys = [owners.cpu.get(cpu, 'boot') for cpu in threads]
            if len(set(keys)) == 1:
                who = owners.escaped[keys[0]]
            else:
                who = ' / '.join(sorted(set(owners.escaped[key] for key in keys)))
            add("<g><title>CPU%s %s \u00b7 node %s \u00b7 %s</title>" % (
                's' if len(threads) > 1 else '', ','.join(map(str, threads)), node, who))
            tw = cw / float(len(threads))
            for t, key in enumerate(keys):
                add("<rect class='%s' x='%g' y='%g' width='%g' height='%d'/>" % (
                    owners.css[key], cx + t * tw, cy, tw, cell))
                if key == 'held':
                    add("<path class='ht' d='M%g %gl%g %g'/>" % (cx + t * tw, cy + cell, tw, -cell))
                if t:
                    add("<path class='sp' d='M%g %gv%d'/>" % (cx + t * tw, cy, cell))
            add("<rect class='co' x='%g' y='%g' width='%g' height='%d' rx='2'/></g>" % (cx, cy, cw, cell))
    y += cores_h + 12
    # Memory bar: what the partitions take from this node, the rest stays with the Boot Kernel.
    svg.text(x0 + PAD, y + 9, 'memory', size=10, fill='#52606d')
    bar_x, bar_w = x0 + PAD + 48, inner - 48
    svg.rect(bar_x, y, bar_w, 12, BOOT_FREE, rx=3)
    used = owners.memory.get(node, [])
    total = max(memory_total, sum(s for _k, s in used)) or 1
    cursor = bar_x
    for key, size in used:
        w = bar_w * size / float(total)
        svg.add("<g><title>%s</title>" % esc('%s: %s from node %s' % (owners.label(key), _gib(size), node)))
        svg.rect(round(cursor, 2), y, max(1.5, round(w, 2)), 12, owners.colour[key])
        svg.add('</g>')
        cursor += w
    svg.rect(bar_x, y, bar_w, 12, 'none', '#9aa5b1', rx=3)
    y += 16
    pieces = ['%s %s' % (owners.label(k), _gib(s)) for k, s in used]
    rest = memory_total - sum(s for _k, s in used)
    pieces.append('Boot Kernel %s' % _gib(max(0, rest)))
    svg.text(bar_x, y + 9, _fit(' \u00b7 '.join(pieces), bar_w, 5.6), size=10, fill='#52606d')
    y += 16
    # Devices, one line each.
    for dev in devices:
        key, who = _device_owner(dev, owners)
        names = ','.join((dev.get('net') or []) + (dev.get('block') or []))
        kind = _fingerprint.kind_of(dev.get('class'))
        title = '%s %s %s:%s driver %s \u00b7 %s%s' % (
            dev.get('address'), kind, dev.get('vendor'), dev.get('device'), dev.get('driver') or 'none', who,
            ''.join('\n' + r for r in dev.get('in_use') or []))
        svg.add("<g><title>%s</title>" % esc(title))
        svg.rect(x0 + PAD, y + 1, 10, 10, owners.colour.get(key, BOOT_FREE), '#7b8794' if key == 'boot' else None,
                 rx=2)
        line = '%s %s %s' % (dev.get('address'), kind, names)
        line = _fit(line, inner * 0.6, 6.0)
        room = inner - 15 - len(line) * 6.0 - 12
        svg.text(x0 + PAD + 15, y + 10, line, size=10, extra=" font-family='DejaVu Sans Mono, Menlo, monospace'")
        svg.text(x0 + PAD + inner, y + 10, _fit(who, room, 5.6), size=10, anchor='end',
                 fill='#1f2933' if key.startswith('p:') else '#616e7c',
                 weight='bold' if key.startswith('p:') else None)
        svg.add('</g>')
        y += 15
    height = y - y0 + PAD - 4
    return width, height


def _node_size(topo, node, devices, cell):
    _boxes, inner, cores_h, _cw = _node_layout(topo, node, cell)
    return inner + 2 * PAD, PAD + 20 + cores_h + 12 + 16 + 16 + 15 * len(devices) + PAD - 4


def _wrap(text, width):
    words, lines, line = str(text).split(' '), [], ''
    room = max(20, int(width / CHAR))
    for word in words:
        if line and len(line) + 1 + len(word) > room:
            lines.append(line)
            line = word
        else:
            line = (line + ' ' + word) if line else word
    if line:
        lines.append(line)
    return lines


def host_svg(facts, plan, title=None, subtitle=None):
    """The SVG text of one host's plan over its topology."""
    if isinstance(facts, dict) and 'parker_kernel' in facts and 'cpus' not in facts:
        facts = facts['parker_kernel']
    topo = _topology.cpu_topology(facts['cpus'])
    owners = _Owners(facts, plan).finish()
    devices = _devices_of(facts)
    memory = dict((n['id'], n.get('mem_total') or 0) for n in (facts.get('numa') or {}).get('nodes') or [])
    gib = _fingerprint.node_memory_gib(facts)
    for node in gib:
        memory[node] = max(memory.get(node, 0), gib[node] << 30) if not memory.get(node) else memory[node]
    # Sockets: their nodes side by side; sockets flow left to right, wrapping at MAX_WIDTH.
    room = MAX_WIDTH - 2 * 16 - 2 * 12
    packages = topo.packages + ([None] if None in topo.package_nodes else [])
    # The largest cell with which each socket's nodes fit in one row (else the smallest, in wrapped rows).
    for cell in (22, 18, 14, 12):
        if all(sum(_node_size(topo, n, devices.get(n, []), cell)[0] + 12
                   for n in topo.package_nodes.get(p, []) if n is not None) - 12 <= room for p in packages):
            break
    sockets = []
    for package in packages:
        nodes = [n for n in topo.package_nodes.get(package, []) if n is not None]
        sizes = [_node_size(topo, n, devices.get(n, []), cell) for n in nodes]
        # Nodes side by side, in balanced rows when they would not fit the page in one.
        per_row, x = 0, 0
        for size in sizes:
            if x and x + size[0] > room:
                break
            x += size[0] + 12
            per_row += 1
        per_row = max(1, per_row)
        rows = -(-len(sizes) // per_row)
        per_row = -(-len(sizes) // rows) if rows else 1
        places, x, y, row_h, width = [], 0, 0, 0, 0
        for number, size in enumerate(sizes):
            if number and number % per_row == 0:
                x, y = 0, y + row_h + 12
                row_h = 0
            places.append((x, y))
            width = max(width, x + size[0])
            x += size[0] + 12
            row_h = max(row_h, size[1])
        sockets.append((package, nodes, sizes, places, width + 2 * 12, y + row_h + 34 + 6))
    cpu_less = sorted(n for n in memory if n not in topo.node_cores)
    body_w = 0
    x = 0
    for socket in sockets:
        if x and x + socket[4] > MAX_WIDTH - 32:
            x = 0
        x += socket[4] + 14
        body_w = max(body_w, x - 14)
    width = max(body_w, 720) + 2 * 16
    svg = _Svg()
    y = 16
    # Header.
    name = title or (plan or {}).get('host') or 'host'
    fingerprint = (plan or {}).get('fingerprint') or _fingerprint.fingerprint_parts(facts, topo)[1]['id']
    hardware = (plan or {}).get('hardware') or _fingerprint.fingerprint_parts(facts, topo)[1]['summary']
    svg.text(16, y + 16, _fit(name, width - 420, 11.5), size=18, weight='bold')
    refused = bool((plan or {}).get('refused'))
    if refused:
        status = 'REFUSED \u00b7 %d reason%s' % (len(plan['reasons']), '' if len(plan['reasons']) == 1 else 's')
    elif plan:
        status = 'plan \u00b7 %d partition%s' % (len(owners.entries), '' if len(owners.entries) == 1 else 's')
    else:
        status = 'topology only'
    status_w = _width(status, 11, True) + 18
    sx = round(16 + min(_width(name, 18, True), width - 400) + 12, 1)
    svg.rect(sx, y + 2, status_w, 20, '#c81e1e' if refused else '#2f855a', rx=10)
    svg.text(sx + status_w / 2.0, y + 16, status, size=11, fill='#ffffff', weight='bold', anchor='middle')
    y += 26
    svg.text(16, y + 12, _fit('%s \u00b7 %s' % (fingerprint, hardware), width - 32, 6.0), size=11, fill='#52606d')
    y += 18
    if subtitle:
        svg.text(16, y + 12, _fit(subtitle, width - 32, 6.0), size=11, fill='#52606d')
        y += 18
    # Legend.
    y += 6
    legend = [('hk', 'Boot Kernel (housekeeping)', (plan or {}).get('housekeeping', {}).get('cpus') or '-',
               HOUSEKEEPING)]
    legend.extend(owners.entries)
    legend.append(('boot', 'Boot Kernel', 'not given to a partition', BOOT_FREE))
    if any(v == 'held' for v in owners.cpu.values()) or any(v == 'held' for v in owners.device.values()):
        legend.append(('held', 'held', 'by a partition outside the plan', HELD))
    x = 16
    for key, label, detail, fill in legend:
        detail = _fit(detail, 330, 6.3)
        label_w = _width(label, 11, True)
        w = 18 + label_w + 6 + _width(detail, 10) + 18
        if x > 16 and x + w > width - 16:
            x, y = 16, y + 20
        svg.rect(x, y + 2, 13, 13, fill, '#7b8794' if key == 'boot' else None, rx=3)
        svg.text(x + 18, y + 13, label, size=11, weight='bold')
        svg.text(round(x + 18 + label_w + 6, 1), y + 13, detail, size=10, fill='#52606d')
        x += w
    y += 26
    if refused:
        lines = []
        for reason in plan['reasons']:
            wrapped = _wrap(reason, width - 64)
            lines.extend([('\u2022 ' if i == 0 else '   ') + line for i, line in enumerate(wrapped)])
        box_h = 14 + 15 * len(lines) + 8
        svg.rect(16, y, width - 32, box_h, '#fdecec', '#e0a3a3', rx=6)
        for i, line in enumerate(lines):
            svg.text(28, y + 20 + 15 * i, line, size=11, fill='#8a1c1c')
        y += box_h + 12
    for warning in (plan or {}).get('warnings') or []:
        for i, line in enumerate(_wrap(warning, width - 48)):
            svg.text(16, y + 12, ('\u26a0 ' if i == 0 else '   ') + line, size=11, fill='#8d5a00')
            y += 16
    if (plan or {}).get('warnings'):
        y += 6
    # Sockets.
    x, row_h = 16, 0
    for package, nodes, sizes, places, sw, sh in sockets:
        if x > 16 and x + sw > width - 16:
            x, y = 16, y + row_h + 14
            row_h = 0
        svg.rect(x, y, sw, sh, '#ffffff', '#9aa5b1', rx=8)
        svg.text(x + 12, y + 19, 'socket %s' % (package if package is not None else '?'), size=12, weight='bold',
                 fill='#3e4c59')
        for node, size, (nx, ny) in zip(nodes, sizes, places):
            svg.rect(x + 12 + nx, y + 28 + ny, size[0], size[1], '#fbfcfd', '#d2d8df', rx=6)
            _draw_node(svg, topo, facts, owners, node, x + 12 + nx, y + 28 + ny, devices.get(node, []),
                       memory.get(node, 0), cell)
        x += sw + 14
        row_h = max(row_h, sh)
    y += row_h + 14
    extra_nodes = [(None, devices.get(None, []))] if devices.get(None) else []
    for node in cpu_less:
        svg.text(16, y + 12, 'node %s: no CPUs, %s of memory' % (node, _gib(memory.get(node, 0))), size=11,
                 fill='#52606d')
        y += 18
    for _node, devs in extra_nodes:
        svg.text(16, y + 12, 'devices without a NUMA node', size=12, weight='bold')
        y += 18
        for dev in devs:
            key, who = _device_owner(dev, owners)
            svg.rect(16, y + 1, 10, 10, owners.colour.get(key, BOOT_FREE), '#7b8794' if key == 'boot' else None,
                     rx=2)
            names = ','.join((dev.get('net') or []) + (dev.get('block') or []))
            line = '%s %s %s \u00b7 %s' % (dev.get('address'), _fingerprint.kind_of(dev.get('class')), names, who)
            svg.text(31, y + 10, line, size=10)
            y += 15
    height = y + 8
    head = ("<svg xmlns='http://www.w3.org/2000/svg' width='%d' height='%d' viewBox='0 0 %d %d' %s>"
            "<title>%s</title>%s<rect width='100%%' height='100%%' fill='#ffffff'/>" % (
                width, height, width, height, FONT, esc('%s \u00b7 %s' % (name, fingerprint)), owners.style()))
    return head + ''.join(svg.parts) + '</svg>\n'


def class_svg(facts, plan, hosts=(), refused=0):
    """The picture of a hardware class: its representative host's topology and plan shape."""
    hosts = sorted(hosts)
    fingerprint = (plan or {}).get('fingerprint') or _fingerprint.hardware_fingerprint(facts)['id']
    subtitle = '%d host%s in this class%s; drawn from %s, whose CPU numbers and PCI addresses are its own' % (
        len(hosts), '' if len(hosts) == 1 else 's', (', %d refused' % refused) if refused else '',
        (plan or {}).get('host') or (hosts[0] if hosts else 'one host'))
    return host_svg(facts, plan, title='hardware class %s' % fingerprint, subtitle=subtitle)


# -- the fleet page ------------------------------------------------------------------------------------

_INDEX_CSS = '''
*{box-sizing:border-box}body{margin:0;font:14px/1.4 "DejaVu Sans",Helvetica,Arial,sans-serif;color:#1f2933;
background:#f5f7fa;height:100vh;display:flex;flex-direction:column}header{padding:14px 20px;background:#1f2933;color:#fff}header h1{margin:0;font-size:19px}
header .sub{color:#cbd2d9;font-size:13px;margin-top:2px}.stats{display:flex;gap:10px;margin-top:10px;
flex-wrap:wrap}.stat{background:#323f4b;border-radius:6px;padding:6px 12px}.stat b{font-size:17px;margin-right:5px}
.stat.bad b{color:#ff8a8a}.stat.warn b{color:#f6c453}main{display:grid;grid-template-columns:minmax(360px,34%) 1fr;
gap:14px;padding:14px 20px;flex:1;min-height:0}section{background:#fff;border:1px solid #d9e2ec;
border-radius:8px;display:flex;flex-direction:column;min-height:0;min-width:0}section h2{font-size:14px;margin:0;
padding:10px 12px;border-bottom:1px solid #e4e7eb}.classes{max-height:34%;overflow:auto;border-bottom:1px solid
#e4e7eb}.cls{padding:7px 12px;border-bottom:1px solid #f0f2f5;cursor:pointer}.cls:hover,.cls.on{background:#eef4fb}
.cls .id{font-family:"DejaVu Sans Mono",monospace;font-weight:bold}.cls .n{float:right;color:#52606d}
.cls .s{color:#52606d;font-size:12px;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.search{display:flex;gap:8px;padding:10px 12px;border-bottom:1px solid #e4e7eb}.search input{flex:1;padding:7px 9px;
border:1px solid #bcccdc;border-radius:6px;font-size:14px}.search select{border:1px solid #bcccdc;border-radius:6px}
.count{padding:4px 12px;color:#52606d;font-size:12px}.list{position:relative;overflow:auto;flex:1;min-height:0}
.row{position:absolute;left:0;right:0;height:30px;display:flex;align-items:center;gap:8px;padding:0 12px;
border-bottom:1px solid #f0f2f5;cursor:pointer;white-space:nowrap}.row:hover{background:#f5f9ff}.row.on{background:#dcebfa}
.row .h{font-weight:bold;min-width:120px}.row .f{font-family:"DejaVu Sans Mono",monospace;color:#52606d;font-size:12px}
.row .m{color:#52606d;font-size:12px;overflow:hidden;text-overflow:ellipsis}.pill{border-radius:9px;padding:1px 8px;
font-size:11px;font-weight:bold;color:#fff;background:#2f855a}.pill.bad{background:#c81e1e}.pill.odd{background:#b7791f}
.view{flex:1;overflow:auto;padding:10px;min-height:0}.view img{max-width:100%;height:auto;display:block;
cursor:zoom-in}.view img.full{max-width:none;cursor:zoom-out}.view .empty{color:#7b8794;
padding:30px}.reasons{margin:0 0 10px;padding:8px 12px 8px 26px;background:#fdecec;border:1px solid #e0a3a3;
border-radius:6px;color:#8a1c1c}.view a{color:#1f5f9e}.bar{display:flex;gap:12px;align-items:center;padding:8px 12px;
border-bottom:1px solid #e4e7eb;flex-wrap:wrap}.bar .t{font-weight:bold}
'''

_INDEX_JS = r'''
(function(){
var D=JSON.parse(document.getElementById('fleet-data').textContent);
var H=D.hosts, C=D.classes, ROW=30, shown=H, cls='', sel=-1;
var list=document.getElementById('list'), pad=document.getElementById('pad'), q=document.getElementById('q'),
    st=document.getElementById('status'), count=document.getElementById('count'), view=document.getElementById('view'),
    title=document.getElementById('vtitle');
function esc(s){return String(s).replace(/[&<>"']/g,function(c){return '&#'+c.charCodeAt(0)+';';});}
function classes(){var out='';C.forEach(function(c,i){out+='<div class="cls'+(cls===c.id?' on':'')+'" data-i="'+i+
 '"><span class="n">'+c.hosts+' host'+(c.hosts==1?'':'s')+(c.refused?', <b style="color:#c81e1e">'+c.refused+
 ' refused</b>':'')+'</span><span class="id">'+esc(c.id)+'</span><div class="s">'+esc(c.summary||'')+'</div></div>';});
 document.getElementById('classes').innerHTML=out;}
function match(h,words,s){if(cls&&h[1]!==cls)return false;if(s==='refused'&&!h[2])return false;if(s==='ok'&&h[2])
 return false;if(s==='outlier'&&!h[5])return false;for(var i=0;i<words.length;i++){var w=words[i];
 if(h[0].toLowerCase().indexOf(w)<0&&h[1].indexOf(w)<0&&(h[4]||'').toLowerCase().indexOf(w)<0)return false;}return true;}
function filter(){var words=q.value.toLowerCase().split(/\s+/).filter(Boolean),s=st.value;shown=[];
 for(var i=0;i<H.length;i++){if(match(H[i],words,s))shown.push(i);}pad.style.height=(shown.length*ROW)+'px';
 count.textContent=shown.length+' of '+H.length+' hosts';list.scrollTop=0;draw();
 var hash='q='+encodeURIComponent(q.value)+(s?'&s='+s:'')+(cls?'&c='+cls:'');if(location.hash.slice(1)!==hash)
 history.replaceState(null,'','#'+hash);}
function draw(){var top=list.scrollTop,first=Math.max(0,Math.floor(top/ROW)-5),
 last=Math.min(shown.length,Math.ceil((top+list.clientHeight)/ROW)+5),out='';
 for(var k=first;k<last;k++){var i=shown[k],h=H[i];out+='<div class="row'+(i===sel?' on':'')+'" data-i="'+i+
 '" style="top:'+(k*ROW)+'px"><span class="h">'+esc(h[0])+'</span>'+(h[2]?'<span class="pill bad">refused</span>':
 '<span class="pill">'+h[3]+' part.</span>')+(h[5]?'<span class="pill odd">odd hardware</span>':'')+
 '<span class="f">'+esc(h[1])+'</span><span class="m" title="'+esc(h[4]||'')+'">'+esc(h[4]||'')+'</span></div>';}
 document.getElementById('rows').innerHTML=out;}
function show(i){sel=i;var h=H[i];draw();title.innerHTML='<span class="t">'+esc(h[0])+'</span> '+(h[7]?'<a href="'+
 esc(D.host_path.replace('{}',encodeURIComponent(h[0])))+'">open picture</a> ':'')+'<span class="f">'+esc(h[1])+
 '</span>';
 var r=h[6]?'<ul class="reasons">'+h[6].map(function(x){return '<li>'+esc(x)+'</li>';}).join('')+'</ul>':'';
 view.innerHTML=r+(h[7]?'<img alt="'+esc(h[0])+'" src="'+esc(D.host_path.replace('{}',encodeURIComponent(h[0])))+
 '">':'<div class="empty">No picture was drawn for this host; its hardware class\'s picture shows its shape.</div>');}
function showClass(i){var c=C[i];cls=(cls===c.id)?'':c.id;classes();filter();if(!cls)return;
 title.innerHTML='<span class="t">class '+esc(c.id)+'</span> <a href="'+esc(c.svg)+'">open picture</a>';
 view.innerHTML='<img alt="'+esc(c.id)+'" src="'+esc(c.svg)+'">';}
list.addEventListener('scroll',draw);window.addEventListener('resize',draw);
view.addEventListener('click',function(e){if(e.target.tagName==='IMG')e.target.classList.toggle('full');});
q.addEventListener('input',filter);st.addEventListener('change',filter);
document.getElementById('rows').addEventListener('click',function(e){var r=e.target.closest('.row');
 if(r)show(+r.getAttribute('data-i'));});
document.getElementById('classes').addEventListener('click',function(e){var r=e.target.closest('.cls');
 if(r)showClass(+r.getAttribute('data-i'));});
var p={};location.hash.slice(1).split('&').forEach(function(kv){var a=kv.split('=');if(a[0])
 p[a[0]]=decodeURIComponent(a[1]||'');});q.value=p.q||'';st.value=p.s||'';cls=p.c||'';
classes();filter();if(shown.length===1)show(shown[0]);
document.body.setAttribute('data-ready',shown.length);
})();
'''


def fleet_index(plans, classes=None, outliers=(), host_path='hosts/{}.svg', class_path='classes/{}.svg',
                title='parker.kernel plans', pictures=None):
    """The fleet page: ``plans`` {host: plan} (plans may be trimmed to host, fingerprint, hardware, refused,
    reasons, partitions); ``classes`` {id: {summary, hosts}} (default: from the plans); ``outliers`` as
    _fingerprint.outliers gives them. Pictures are linked by ``host_path``/``class_path`` ({} is the name);
    ``pictures`` lists the hosts that have one when not all do (a large fleet may draw only some)."""
    drawn = None if pictures is None else set(pictures)
    classes = classes if classes is not None else _fingerprint.hardware_classes(plans)
    odd = set(o['host'] for o in outliers or ())
    hosts, refused = [], 0
    for host in sorted(plans):
        plan = plans[host] or {}
        bad = bool(plan.get('refused'))
        refused += bad
        parts = plan.get('partitions') or []
        summary = ', '.join('%s %s' % (p.get('name'), p.get('cpus')) for p in parts[:4])
        if bad:
            summary = (plan.get('reasons') or [''])[0]
        hosts.append([host, plan.get('fingerprint') or '', 1 if bad else 0, len(parts), summary[:160],
                      1 if host in odd else 0, (plan.get('reasons') or [])[:20] if bad else 0,
                      1 if drawn is None or host in drawn else 0])
    class_rows = []
    refused_by = {}
    for host in plans:
        if (plans[host] or {}).get('refused'):
            fp = plans[host].get('fingerprint')
            refused_by[fp] = refused_by.get(fp, 0) + 1
    for cid in sorted(classes, key=lambda c: (-len(classes[c].get('hosts') or []), c)):
        entry = classes[cid]
        class_rows.append({'id': cid, 'summary': entry.get('summary'), 'hosts': len(entry.get('hosts') or []),
                           'refused': refused_by.get(cid, 0), 'svg': class_path.replace('{}', cid)})
    data = json.dumps({'hosts': hosts, 'classes': class_rows, 'host_path': host_path},
                      sort_keys=True, separators=(',', ':'))
    data = data.replace('<', '\\u003c').replace('>', '\\u003e').replace('&', '\\u0026')
    stats = [('', len(hosts), 'hosts'), ('', len(class_rows), 'hardware classes'),
             ('bad' if refused else '', refused, 'refused'), ('warn' if odd else '', len(odd), 'odd hardware')]
    return ''.join([
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<title>%s</title><style>%s</style></head><body>' % (esc(title), _INDEX_CSS),
        '<header><h1>%s</h1><div class="sub">Each host\'s partitions as the planner made them from its facts; '
        'select a host or a hardware class to see its picture.</div><div class="stats">%s</div></header>' % (
            esc(title), ''.join('<div class="stat %s"><b>%d</b>%s</div>' % (k, n, esc(t)) for k, n, t in stats)),
        '<main><section><h2>Hardware classes</h2><div class="classes" id="classes"></div>',
        '<div class="search"><input id="q" type="search" placeholder="search hosts, classes, partitions\u2026" '
        'autocomplete="off"><select id="status"><option value="">all</option><option value="ok">planned</option>'
        '<option value="refused">refused</option><option value="outlier">odd hardware</option></select></div>',
        '<div class="count" id="count"></div><div class="list" id="list"><div id="pad"></div><div id="rows"></div>'
        '</div></section>',
        '<section><div class="bar" id="vtitle"><span class="t">No host selected</span></div><div class="view" '
        'id="view"><div class="empty">Select a host on the left, or a hardware class.</div></div></section></main>',
        '<script type="application/json" id="fleet-data">%s</script>' % data,
        '<script>%s</script></body></html>\n' % _INDEX_JS,
    ])
