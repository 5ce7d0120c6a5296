# -*- coding: utf-8 -*-
# Copyright (c) parker.kernel contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# This module util is PRIVATE to the parker.kernel collection.
# It can have breaking changes at any time.

"""PCI detach and reattach for parker.kernel.device_detach."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import errno
import re

from ansible_collections.parker.kernel.plugins.module_utils._common import refuse_all, diff_of
from ansible_collections.parker.kernel.plugins.module_utils._hostio import ApplyError
from ansible_collections.parker.kernel.plugins.module_utils import _facts, _ownership, _state, _steps

PCI_BUS = '/sys/bus/pci'
_FULL_BDF = re.compile(r'^[0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$')
_SHORT_BDF = re.compile(r'^[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$')
_VENDOR_DEVICE = re.compile(r'^[0-9a-fA-F]{4}:[0-9a-fA-F]{4}$')
_NAME = re.compile(r'^[A-Za-z0-9_.:-]+$')


def resolve_devices(selectors, devices, saved=None):
    """Turn addresses and selectors into a sorted list of BDFs (pure).

    A detached device loses its net/block names; ``saved`` (the state file)
    remembers them, so net=/block= selectors still find it to reattach.
    """
    saved = saved or {}
    problems, found = [], set()
    for raw in selectors:
        sel = str(raw).strip()
        if '/' in sel or '..' in sel or not sel or any(c.isspace() for c in sel):
            problems.append('device %r looks like a path or is empty; give a PCI address (DDDD:BB:DD.F) or a '
                            'selector (VVVV:DDDD, class=0xCCSSPP, net=IFACE, block=DISK)' % raw)
            continue
        key, eq, value = sel.partition('=')
        if _FULL_BDF.match(sel) or _SHORT_BDF.match(sel):
            bdf = sel.lower() if _FULL_BDF.match(sel) else '0000:' + sel.lower()
            matches = [d for d in devices if d['address'] == bdf]
        elif _VENDOR_DEVICE.match(sel):
            vendor, device = sel.lower().split(':')
            matches = [d for d in devices if d['vendor'] == vendor and d['device'] == device]
        elif eq and key == 'class' and re.match(r'^(0x)?[0-9a-fA-F]{2,6}$', value):
            prefix = value.lower().replace('0x', '')
            matches = [d for d in devices if (d['class'] or '').replace('0x', '').startswith(prefix)]
        elif eq and key in ('net', 'block') and _NAME.match(value):
            matches = [d for d in devices
                       if value in d[key] or value in saved.get(d['address'], {}).get(key, [])]
        else:
            problems.append('device %r is malformed: expected DDDD:BB:DD.F, BB:DD.F, VVVV:DDDD, class=0xCCSSPP, '
                            'net=IFACE or block=DISK' % raw)
            continue
        if not matches:
            problems.append('device %r matches no PCI device on this host' % raw)
        found.update(d['address'] for d in matches)
    refuse_all(problems)
    return sorted(found)


def _target(override):
    """(driver expected after detach, driver_override value) for a requested override."""
    return (None, 'none') if override == 'none' else (override, override)


def by_address(pci):
    """pci_facts() devices indexed by PCI address."""
    return dict((d['address'], d) for d in pci['devices'])


def plan_devices(params, pci, claimed, saved):
    devices = by_address(pci)
    bdfs = resolve_devices(params['devices'], pci['devices'], saved)
    detach = params['state'] == 'detached'
    force = params['force']
    problems, steps = [], []
    want_driver, want_override = _target(params['driver_override'])
    for bdf in bdfs:
        dev = devices[bdf]
        if bdf in claimed:
            problems.append('%s is claimed by a Parker partition; the host must not touch its driver files '
                            '(that crashed a real Boot Kernel); use the partition\'s unbind' % bdf)
            continue
        if detach and not force and pci['ssh_interface'] is None and (dev['class'] or '').startswith('0x02'):
            problems.append('%s is a network device and the interface carrying this SSH session could not be '
                            'determined (no SSH_CONNECTION, no session on port 22); set force=true if it is not '
                            'the one Ansible uses' % bdf)
        if detach:
            problems.extend(_ownership.takeover_problems(dev, force))
        if detach and not force:
            group = dev['iommu_group']
            if group is not None:
                others = [d['address'] for d in pci['devices']
                          if d['iommu_group'] == group and d['address'] not in bdfs]
                if others:
                    problems.append('%s shares IOMMU group %s with %s, which is not being detached; list the whole '
                                    'group or set force=true' % (bdf, group, ', '.join(others)))
        if detach:
            if dev['driver'] == want_driver and dev['driver_override'] == want_override:
                continue
            steps.append({'address': bdf, 'from': dev['driver'], 'override_before': dev['driver_override'],
                          'to': want_driver, 'override': want_override, 'net': dev['net'], 'block': dev['block']})
        else:
            record = saved.get(bdf, {})
            original = record.get('driver')
            if dev['driver_override'] is None and dev['driver'] is not None and \
                    (original is None or dev['driver'] == original):
                continue
            steps.append({'address': bdf, 'from': dev['driver'], 'override_before': dev['driver_override'],
                          'to': original, 'override': None})
    refuse_all(problems)
    return bdfs, steps


def _device(bdf, name):
    return '%s/devices/%s/%s' % (PCI_BUS, bdf, name)


def change_steps(change):
    """The writes that move one device from its driver to another (pure). ``change`` is an entry of
    plan_devices(): address, from, override_before, to, override."""
    bdf = change['address']
    old, new = change['from'], change['to']
    steps = []
    if old and old != new:
        steps.append(_steps.write(_device(bdf, 'driver/unbind'), bdf, undo=('%s/drivers/%s/bind' % (PCI_BUS, old), bdf)))
    if change['override'] != change['override_before']:
        steps.append(_steps.write(_device(bdf, 'driver_override'), change['override'] or '\n',
                                  undo=change['override_before'] or '\n'))
    if new and new != old:
        unbind = ('%s/drivers/%s/unbind' % (PCI_BUS, new), bdf)
        if change['override'] is None:
            steps.append(_steps.write('%s/drivers/%s/bind' % (PCI_BUS, new), bdf, undo=unbind, undo_ok=(errno.ENODEV,)))
        else:
            # driver_override + drivers_probe binds exactly the named driver; a probe that fails binds nothing.
            steps.append(_steps.write(PCI_BUS + '/drivers_probe', bdf, undo=unbind, undo_ok=(errno.ENODEV,)))
    elif new is None and change['override'] is None:
        # Attach with no recorded original driver: let the kernel pick, then verify something bound.
        steps.append(_steps.write(PCI_BUS + '/drivers_probe', bdf))
    return steps


def run_device_detach(params, io, txn):
    pci = _facts.pci_facts(io)
    _cpus, claimed = _facts.parker_claims(io, params['parker_root'])
    saved = _state.load(io, _state.DEVICES)
    bdfs, steps = plan_devices(params, pci, claimed, saved)

    # A driver the kernel does not have yet is loaded with modprobe; check it exists before any write.
    needed = set(s['to'] for s in steps if s['to'])
    missing = []
    for driver in sorted(needed):
        if not io.isdir('%s/drivers/%s' % (PCI_BUS, driver)):
            rc, _out, _err = txn.probe(['modprobe', '-n', '-q', driver])
            if rc != 0:
                missing.append(driver)
    refuse_all(['driver %r is neither loaded nor available to modprobe' % d for d in missing])
    for driver in sorted(needed):
        if not io.isdir('%s/drivers/%s' % (PCI_BUS, driver)):
            txn.run(['modprobe', driver])

    record = dict(saved)
    for step in steps:
        if params['state'] == 'detached':
            record.setdefault(step['address'], {'driver': step['from'], 'driver_override': step['override_before'],
                                                'net': step['net'], 'block': step['block']})
        else:
            record.pop(step['address'], None)
    for step in steps:
        _steps.apply(txn, change_steps(step))

    if not txn.check_mode and steps:
        after = by_address(_facts.pci_facts(io))
        attaching = params['state'] == 'attached'
        wrong = [s['address'] for s in steps
                 if (s['to'] is not None and after[s['address']]['driver'] != s['to'])
                 or (attaching and after[s['address']]['driver'] is None)
                 or after[s['address']]['driver_override'] != s['override']]
        if wrong:
            raise ApplyError('verify PCI drivers', None, 'devices %s did not reach the requested driver'
                             % ', '.join(wrong))
    if record != saved:
        txn.save_json(_state.DEVICES, record)

    index = by_address(pci)

    def view(changed):
        lines = []
        for bdf in bdfs:
            step = changed.get(bdf)
            dev = index[bdf]
            driver, override = (step['to'], step['override']) if step else (dev['driver'], dev['driver_override'])
            lines.append('%s driver=%s driver_override=%s' % (bdf, driver or '-', override or '-'))
        return '\n'.join(lines)
    return {
        'changed': bool(steps),
        'devices': bdfs,
        'changed_devices': [s['address'] for s in steps],
        'steps': steps,
        'original_drivers': dict((b, record.get(b, saved.get(b, {})).get('driver')) for b in bdfs),
        'diff': diff_of('/sys/bus/pci/devices', view({}), view(dict((s['address'], s) for s in steps))),
    }
