# -*- coding: utf-8 -*-
# Copyright (c) parker.kernel contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# This module util is PRIVATE to the parker.kernel collection.
# It can have breaking changes at any time.

"""Steps: what a planner returns, and the one place that applies and verifies them.

A step is a plain dict (a value: it can be compared, printed, returned in check
mode), made by the constructors below. Planners build lists of them from facts
and a request without any I/O; ``apply`` hands each to the Transaction, which
skips it in check mode, records it in ``actions`` and keeps its undo; ``unmet``
reads back what each step expects the kernel to show afterwards.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import errno
import time

from ansible_collections.parker.kernel.plugins.module_utils._hostio import ApplyError

# Freed before an ENOMEM write is retried (a CMA allocation fails while the host uses pages of the area).
RECLAIM = (('sync',), ('/proc/sys/vm/drop_caches', '3'), ('/proc/sys/vm/compact_memory', '1'))


def write(path, value, undo=None, undo_ok=(), retry=(), retry_timeout=0.0, expect=None, reclaim=0, hint=None):
    """Write ``value`` to ``path``.

    ``undo`` is the value that puts ``path`` back (or (path, value) for another file); ``undo_ok`` errnos
    mean the undo has nothing left to do. ``retry`` errnos are retried for ``retry_timeout`` seconds;
    ``reclaim`` times an ENOMEM is retried after freeing caches and compacting, then fails with ``hint``.
    ``expect`` is what reading ``path`` back must give (the value itself when True).
    """
    if undo is not None and not isinstance(undo, (tuple, list)):
        undo = (path, undo)
    return {'op': 'write', 'path': path, 'value': str(value),
            'undo': list(undo) + [list(undo_ok)] if undo is not None else None,
            'retry': list(retry), 'retry_timeout': retry_timeout, 'reclaim': reclaim, 'hint': hint,
            'expect': str(value) if expect is True else expect}


def mkdir(path):
    """A directory the undo removes again (a Parker partition)."""
    return {'op': 'mkdir', 'path': path}


def rmdir(path):
    return {'op': 'rmdir', 'path': path}


def run(argv, undo=None):
    """A mutating command (argument list, never a shell); ``undo`` is the argv that reverses it."""
    return {'op': 'run', 'argv': list(argv), 'undo': list(undo) if undo else None}


def save(path, data, undo=False):
    """Replace a state record (see _state); with ``undo`` a rollback puts the old one back."""
    return {'op': 'save', 'path': path, 'data': data, 'undo': undo}


def apply(txn, steps):
    """Apply ``steps`` in order through ``txn`` (nothing is written in check mode)."""
    for step in steps:
        op = step['op']
        if op == 'write':
            _write(txn, step)
        elif op == 'mkdir':
            txn.mkdir(step['path'])
        elif op == 'rmdir':
            txn.rmdir(step['path'])
        elif op == 'run':
            txn.run(step['argv'], undo=step['undo'])
        elif op == 'save':
            txn.save_json(step['path'], step['data'], undo=step['undo'])
        else:
            raise ValueError('unknown step %r' % (op,))


def _write(txn, step):
    undo = tuple(step['undo']) if step['undo'] else None
    for attempt in range(step['reclaim'] + 1):
        try:
            txn.write(step['path'], step['value'], undo=undo, retry_errnos=tuple(step['retry']),
                      retry_timeout=step['retry_timeout'])
            return
        except ApplyError as exc:
            if exc.errno != errno.ENOMEM or attempt == step['reclaim']:
                if exc.errno == errno.ENOMEM and step['hint']:
                    exc.hint = step['hint']
                raise
            txn.actions.pop()   # the attempt that failed is not an action; the reclaim and the retry are
            for reclaim in RECLAIM:
                if len(reclaim) == 1:
                    txn.run(list(reclaim))
                else:
                    txn.write(reclaim[0], reclaim[1])
            time.sleep(1)


def unmet(io, steps):
    """What the kernel shows differently from what the applied ``steps`` expect: ['path reads X, not Y']."""
    wrong = []
    for step in steps:
        expect = step.get('expect')
        if expect is None:
            continue
        now = io.read(step['path'])
        if now != expect:
            wrong.append('%s reads %r, not %r' % (step['path'], now, expect))
    return wrong


def verify(io, txn, steps, what):
    """Fail (with the rollback that follows) when an applied step did not take effect."""
    if txn.check_mode:
        return
    wrong = unmet(io, steps)
    if wrong:
        raise ApplyError('verify %s' % what, None, '; '.join(wrong))
