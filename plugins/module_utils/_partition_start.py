# -*- coding: utf-8 -*-
# Copyright (c) parker.kernel contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# This module util is PRIVATE to the parker.kernel collection.
# It can have breaking changes at any time.

"""Starting an Application Kernel in a built Parker partition (parker-interface.md §2.4).

A normal kexec load placed inside the partition's memory (--mem-min/--mem-max), with
``parker=<control page> memmap=exactmap memmap=SIZE@BASE`` on its line, then a write
to ``online`` that blocks until the Application Kernel reports itself up, then the
host's only kexec slot cleared. ``check`` and ``line`` are pure and run in the plan,
before the first write of the run; ``start`` is the I/O, after the build, when the
control page and the memory's base are known.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import errno

from ansible_collections.parker.kernel.plugins.module_utils._common import Refused
from ansible_collections.parker.kernel.plugins.module_utils._hostio import ApplyError
from ansible_collections.parker.kernel.plugins.module_utils._render import app_kernel_tokens, RenderError
from ansible_collections.parker.kernel.plugins.module_utils import _kexec

OFF = ('', 'off', 'false', 'no', 'none', '0')


def _token_arg(token):
    name, sep, value = token.partition('=')
    return {'name': name, 'value': value} if sep else {'name': name}


def extra_tokens(spec, measured_khz):
    """The tuning tokens after ip=: the user's, then nokaslr and tsc_early_khz= unless turned off or given.
    Returns (args, warnings).

    nokaslr: the kexec placement and memmap= pin the image inside the partition's memory. tsc_early_khz=
    skips an Application Kernel's own TSC calibration, which hung under QEMU TCG on a real start.
    """
    extra = [_token_arg(t) for t in spec['cmdline'] or []]
    given = set(a['name'] for a in extra)
    if spec.get('nokaslr', True) is not False and not given & set(['nokaslr', 'kaslr']):
        extra.append({'name': 'nokaslr'})
    tsc = str(spec['tsc_early_khz'] if spec.get('tsc_early_khz') is not None else 'auto').strip()
    if 'tsc_early_khz' in given or tsc.lower() in OFF:
        return extra, []
    if tsc.lower() == 'auto':
        if measured_khz is None:
            return extra, ['tsc_early_khz=auto: the Boot Kernel\'s log has no "tsc: Refined TSC clocksource '
                           'calibration" or "tsc: Detected ... MHz processor" line, so the Application Kernel of %s '
                           'calibrates its TSC itself; set tsc_early_khz to the kHz value to pass one' % spec['name']]
        tsc = str(measured_khz)
    if not tsc.isdigit():
        raise Refused('%s: tsc_early_khz: %r is not auto, off or a frequency in kHz' % (spec['name'], tsc))
    extra.append({'name': 'tsc_early_khz', 'value': tsc})
    return extra, []


def line(spec, control, size, base, extra, machine):
    """The Application Kernel's command line as tokens."""
    try:
        return app_kernel_tokens(control, size, base, console=spec['console'], root=spec['root'], ip=spec['ip'],
                                 extra=extra, machine=machine)
    except RenderError as exc:
        raise Refused('%s: Application Kernel command line: %s' % (spec['name'], exc))


def limits(base, size):
    return '0x%x' % base, '0x%x' % (base + size - 1)


def check(spec, facts):
    """Everything a start needs, checked before the partition is built: the kernel files, kexec and its
    policy, the command line (with a placeholder control page). Returns (extra tokens, problems, warnings)."""
    problems = []
    if not spec['kernel']:
        return None, ['%s: state started needs kernel (and usually initrd)' % spec['name']], []
    try:
        extra, warnings = extra_tokens(spec, facts['tsc_khz'])
        line(spec, '0x0', spec['memory'], 0, extra, facts['machine'])
    except Refused as exc:
        return None, [exc.msg], []
    low, high = limits(0, spec['memory'])
    try:
        _kexec.plan_load(spec['kernel'], spec['initrd'], 'normal', 'legacy', low, high, facts['kexec'])
    except Refused as exc:
        problems.extend('%s: %s' % (spec['name'], p) for p in exc.details.get('problems') or [exc.msg])
    return extra, problems, warnings


def start(io, txn, spec, base_path, part, extra, machine, timeout, on_spawn):
    """Load the Application Kernel inside the partition's memory, write online, clear the slot.

    ``on_spawn(pid)`` runs as the online writer starts, before the wait: from then on the partition is
    used (single-use), even if this run dies.
    """
    base, size = part['memory']['start'], part['memory']['size']
    tokens = line(spec, part['control_structure'], size, base, extra, machine)
    low, high = limits(base, size)
    online = '%s/online' % base_path
    if txn.check_mode:
        txn.actions.append('kexec -l %s inside the partition (cmdline %s)' % (spec['kernel'], ' '.join(tokens)))
    else:
        # Read now: an earlier start in this run emptied the slot again.
        facts = _kexec.slot_facts(io, 'normal', (spec['kernel'], spec['initrd']))
        _kexec.load(io, txn, facts, spec['kernel'], spec['initrd'], ' '.join(tokens), 'normal', 'legacy', low, high)
    try:
        txn.write_blocking(online, '1', timeout, on_spawn=on_spawn)
    except ApplyError as exc:
        if exc.errno == errno.ETIMEDOUT:
            # The writer still spins in the kernel holding parker_mutex, and the partition's CPUs may be running
            # the image: undoing (rmdir, kexec -u) would hang or pull resources from under it.
            txn.discard_undo()
            timed_out = ApplyError('start partition %s' % spec['name'], errno.ETIMEDOUT,
                                   'the Application Kernel did not report online within %d s; the write is still '
                                   'blocked in the kernel holding Parker\'s mutex. Nothing was undone: check the '
                                   'Application Kernel\'s console, and reset the host to recover' % timeout)
            timed_out.left_in_place = True
            raise timed_out
        unload(io, txn)
        raise
    # Online: the Application Kernel runs, and nothing before this can be undone any more (an rmdir would meet
    # EBUSY and the record of its single use would be lost), so this unit ends here.
    txn.commit()
    # One slot: an image left there would kexec the host on its next `systemctl kexec`.
    unload(io, txn)
    now = None if txn.check_mode else io.read(online)
    if now not in (None, '1'):
        raise ApplyError('verify %s' % online, None, 'the write returned but online reads %r' % now)
    return tokens


def unload(io, txn):
    if txn.check_mode:
        txn.actions.append('kexec -u')
    else:
        _kexec.unload(io, txn, _kexec.slot_facts(io))
