# -*- coding: utf-8 -*-
# Copyright (c) parker.kernel contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# This module util is PRIVATE to the parker.kernel collection.
# It can have breaking changes at any time.

"""Canary rollouts for playbooks/site.yml, pure: which hosts go first, which must stop, and the final report.

Each host of a rollout carries a record {host, class, canary, state, reason}; state is started, done, failed,
reverted (its boot line went back by itself) or halted (never touched). Canaries are the first host of each
class in rollout order; the rest follow in batches.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

FAILED = ('failed', 'reverted')


def canaries(classes):
    """[[host, class], ...] in rollout order -> the first host of each class, in that order."""
    seen, chosen = set(), []
    for host, klass in classes:
        if klass not in seen:
            seen.add(klass)
            chosen.append(host)
    return chosen


def halt_reason(me, records, max_fail_percentage):
    """Why the host ``me`` must not start (its class's canary did not pass, or the hosts after the canaries
    failed beyond the limit), or '' to go on. ``records`` are every host's record so far."""
    if me.get('canary'):
        return ''
    canary = next((r for r in records if r.get('canary') and r.get('class') == me.get('class')), None)
    if canary is not None and canary.get('state') != 'done':
        return 'halted: canary %s of class %s %s' % (canary['host'], me.get('class'), {
            'failed': 'failed', 'reverted': 'reverted its boot line', 'halted': 'was halted'}.get(
                canary.get('state'), 'did not finish'))
    finished = [r for r in records if not r.get('canary') and r.get('state') in ('done',) + FAILED]
    failed = [r for r in finished if r['state'] in FAILED]
    if finished and len(failed) * 100.0 / len(finished) > float(max_fail_percentage):
        return 'halted: %d of %d hosts after the canaries failed (%s), over parker_max_fail_percentage=%s' % (
            len(failed), len(finished), ', '.join(sorted(r['host'] for r in failed)), max_fail_percentage)
    return ''


def report(records, hosts):
    """The end of a rollout: hosts done, reverted, failed and never touched, with reasons, in ``hosts`` order."""
    by_host = dict((r['host'], r) for r in records if r)
    out = {'done': [], 'reverted': [], 'failed': [], 'untouched': [], 'reasons': {}}
    for host in hosts:
        record = by_host.get(host) or {}
        state = record.get('state')
        if state == 'done':
            out['done'].append(host)
        elif state in FAILED:
            out[state].append(host)
        elif state == 'started':   # unreachable, or the run ended while it worked
            out['failed'].append(host)
            record = dict(record, reason=record.get('reason') or 'did not finish (unreachable or interrupted)')
        else:
            out['untouched'].append(host)
        if record.get('reason'):
            out['reasons'][host] = record['reason']
    out['lines'] = ['%s: %s' % (key, ', '.join(out[key]) or '-') for key in ('done', 'reverted', 'failed', 'untouched')]
    out['lines'] += ['%s: %s' % (host, reason) for host, reason in sorted(out['reasons'].items())]
    return out
