# -*- coding: utf-8 -*-
# Copyright (c) parker.kernel contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.parker.kernel.plugins.module_utils import _rollout


def record(host, klass, canary=False, state='waiting'):
    return {'host': host, 'class': klass, 'canary': canary, 'state': state}


def test_canaries_are_the_first_host_of_each_class_in_rollout_order():
    pairs = [['n1', 'gen5'], ['n2', 'gen5'], ['n3', 'gen6'], ['n4', 'gen6'], ['n5', 'gen7']]
    assert _rollout.canaries(pairs) == ['n1', 'n3', 'n5']
    assert _rollout.canaries([]) == []


def test_a_failed_canary_halts_only_its_class():
    records = [record('n1', 'gen5', True, 'failed'), record('n3', 'gen6', True, 'done'),
               record('n2', 'gen5'), record('n4', 'gen6')]
    assert _rollout.halt_reason(records[2], records, 0) == 'halted: canary n1 of class gen5 failed'
    assert _rollout.halt_reason(records[3], records, 0) == ''
    reverted = [record('n1', 'gen5', True, 'reverted')]
    assert 'reverted its boot line' in _rollout.halt_reason(record('n2', 'gen5'), reverted, 100)
    # A canary never halts itself, whatever the others did.
    assert _rollout.halt_reason(records[0], records, 0) == ''


def test_failures_after_the_canaries_over_the_limit_halt_the_rest():
    records = [record('c', 'a', True, 'done'), record('n1', 'a', state='done'), record('n2', 'a', state='failed'),
               record('n3', 'a'), record('n4', 'a', state='started')]
    assert _rollout.halt_reason(records[3], records, 50) == ''            # 1 of 2 finished: 50%, not over
    reason = _rollout.halt_reason(records[3], records, 49)
    assert reason == 'halted: 1 of 2 hosts after the canaries failed (n2), over parker_max_fail_percentage=49'
    assert _rollout.halt_reason(records[3], records[:2] + records[3:], 0) == ''   # nothing failed yet
    # The canaries' own failures are not counted against the limit: they halt their class instead.
    other = [record('c1', 'a', True, 'failed'), record('c2', 'b', True, 'done'), record('n', 'b')]
    assert _rollout.halt_reason(other[2], other, 0) == ''


def test_the_report_sorts_every_host_in_rollout_order():
    records = [dict(record('c1', 'a', True, 'failed'), reason='Persist: refused'),
               dict(record('c2', 'b', True, 'reverted'), reason='reverted: gate'),
               record('n1', 'b', state='done'), dict(record('n2', 'a', state='halted'), reason='halted: canary c1'),
               record('n3', 'a', state='started'), None]
    report = _rollout.report(records, ['c1', 'c2', 'n1', 'n2', 'n3', 'n4'])
    assert report['done'] == ['n1'] and report['reverted'] == ['c2'] and report['failed'] == ['c1', 'n3']
    assert report['untouched'] == ['n2', 'n4']
    assert report['reasons']['n3'] == 'did not finish (unreachable or interrupted)'
    assert report['lines'][:4] == ['done: n1', 'reverted: c2', 'failed: c1, n3', 'untouched: n2, n4']
