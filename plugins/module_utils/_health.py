# -*- coding: utf-8 -*-
# Copyright (c) parker.kernel contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# This module util is PRIVATE to the parker.kernel collection.
# It can have breaking changes at any time.

"""Is an Application Kernel up? Probes from the Boot Kernel to each one's own address (read-only I/O).

Parker's ``online`` is set at the end of the Application Kernel's PCI scan, before
timers, network or init: only an answer at its own address says it works. ICMP
goes through the host's ping (argument list, never a shell); a TCP probe is a
connect().
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import socket
import time

PING_PATHS = ('/usr/bin/ping', '/bin/ping', '/usr/sbin/ping', '/sbin/ping')


def target(spec):
    """{'address', 'port'} to probe for a partition spec, or None when it gives no address."""
    network = spec.get('network') or {}
    health = spec.get('health') or {}
    address = health.get('address') or network.get('address')
    if not address:
        return None
    return {'address': str(address).split('/', 1)[0], 'port': health.get('port')}


def _once(io, runner, probe):
    if probe['port']:
        try:
            conn = socket.create_connection((probe['address'], int(probe['port'])), timeout=2)
            conn.close()
            return True, 'answers on TCP port %s' % probe['port']
        except (socket.error, socket.timeout, OSError) as exc:
            return False, 'TCP port %s: %s' % (probe['port'], getattr(exc, 'strerror', None) or exc)
    ping = next((p for p in PING_PATHS if io.exists(p)), None)
    if ping is None:
        return False, 'no ping on the Boot Kernel (%s); give health.port for a TCP probe' % ', '.join(PING_PATHS)
    rc, _out, err = runner([ping, '-n', '-c', '1', '-W', '1', probe['address']])
    if rc == 0:
        return True, 'answers ICMP echo'
    return False, 'no ICMP echo reply%s' % (': ' + err.strip() if err.strip() else '')


def probe_all(io, runner, probes, timeout):
    """{name: {'healthy', 'detail'}} for {name: probe}, retrying each until it answers or ``timeout`` s passed."""
    results = {}
    pending = dict(probes)
    deadline = time.time() + max(timeout, 0)
    while pending:
        for name in sorted(pending):
            healthy, detail = _once(io, runner, pending[name])
            where = '%s%s' % (pending[name]['address'], ':%s' % pending[name]['port'] if pending[name]['port'] else '')
            results[name] = {'healthy': healthy, 'detail': '%s %s' % (where, detail), 'address': where}
            if healthy:
                del pending[name]
        if not pending or time.time() >= deadline:
            break
        time.sleep(1)
    return results
