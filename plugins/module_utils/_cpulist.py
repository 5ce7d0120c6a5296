# -*- coding: utf-8 -*-
# Copyright (c) parker.kernel contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# This module util is PRIVATE to the parker.kernel collection.
# It can have breaking changes at any time.

"""Kernel cpulist syntax (bitmap_parselist), parsed strictly.

Grammar, as lib/bitmap-str.c accepts it: comma-separated groups, each one of
``N``, ``a``, ``a-b``, ``a-b:used/group``, ``all`` or ``all:used/group``,
where ``N`` is the last possible CPU. We refuse anything else *before* a write:
the Parker RFC applies a malformed list partially (parker-interface.md §2.8).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import re

_GROUP = re.compile(r'^(?P<start>\d+|N)(?:-(?P<end>\d+|N))?(?::(?P<used>\d+)/(?P<group>\d+))?$')


# Far above any kernel's NR_CPUS (8192 on x86) and any memory block id; checked before a range is
# expanded, so "0-4000000000" is refused instead of exhausting the managed host's memory.
MAX_ID = 1 << 22


class CpulistError(ValueError):
    pass


def _bound(token, last_cpu, text):
    if token == 'N':
        if last_cpu is None:
            raise CpulistError("cpulist %r uses N but the host's last CPU is unknown" % text)
        return last_cpu
    return int(token)


def parse_cpulist(text, last_cpu=None):
    """Return the set of CPU numbers in a kernel cpulist string.

    ``last_cpu`` resolves ``N`` and ``all``. Raises CpulistError on any token
    the kernel would refuse, and on ranges running backwards.
    """
    if text is None:
        raise CpulistError('cpulist is missing')
    text = str(text).strip()
    if text == '':
        return set()
    cpus = set()
    for raw in text.split(','):
        group = raw.strip()
        if group.lower().startswith('all'):
            if last_cpu is None:
                raise CpulistError("cpulist %r uses 'all' but the host's last CPU is unknown" % text)
            group = '0-%d%s' % (last_cpu, group[3:])
        match = _GROUP.match(group)
        if not match:
            raise CpulistError('malformed cpulist group %r in %r' % (raw, text))
        start = _bound(match.group('start'), last_cpu, text)
        end = _bound(match.group('end'), last_cpu, text) if match.group('end') else start
        if end < start:
            raise CpulistError('range %r in %r runs backwards' % (raw, text))
        if end > MAX_ID:
            raise CpulistError('%r in %r is beyond any kernel\'s limit (%d)' % (raw, text, MAX_ID))
        used, size = 1, 1
        if match.group('used') is not None:
            if match.group('end') is None:
                raise CpulistError('stride in %r needs a range a-b:used/group' % raw)
            used, size = int(match.group('used')), int(match.group('group'))
            if size == 0 or used == 0 or used > size:
                raise CpulistError('stride %r in %r needs 0 < used <= group' % (raw, text))
        for base in range(start, end + 1, size):
            cpus.update(cpu for cpu in range(base, min(base + used, end + 1)))
    return cpus


def parse_cpus(value, last_cpu=None):
    """Accept a cpulist string, an int, or a list of ints/cpulist strings."""
    if isinstance(value, bool):
        raise CpulistError('a boolean is not a CPU list: %r' % (value,))
    if isinstance(value, int):
        return {value}
    if isinstance(value, (list, tuple, set)):
        cpus = set()
        for item in value:
            cpus |= parse_cpus(item, last_cpu)
        return cpus
    return parse_cpulist(value, last_cpu)


def cpus_of(text):
    """The CPUs of a cpulist the kernel wrote (a kernfs cpus file, a facts field); empty when it does not parse."""
    try:
        return parse_cpus(text or '')
    except (CpulistError, ValueError):
        return set()


def format_cpulist(cpus):
    """Render CPU numbers in the kernel's canonical form, e.g. ``0-3,8,10-11``."""
    ordered = sorted(set(cpus))
    parts = []
    index = 0
    while index < len(ordered):
        start = end = ordered[index]
        while index + 1 < len(ordered) and ordered[index + 1] == end + 1:
            index += 1
            end = ordered[index]
        parts.append('%d' % start if start == end else '%d-%d' % (start, end))
        index += 1
    return ','.join(parts)
