# -*- coding: utf-8 -*-
# Copyright (c) parker.kernel contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# This module util is PRIVATE to the parker.kernel collection.
# It can have breaking changes at any time.

"""The one place that names the files the collection keeps on a host, and the kernfs default.

Records under /run live as long as the kernel that holds what they describe: a
reboot hands every CPU, memory block and device back, and takes the records with
it. The hardware record is the exception: it must outlive a reboot, since a reboot
is when hardware changes.

| file | written by | holds |
|---|---|---|
| partitions.json | partition, host_partitions | per partition: cpus, memory, devices (see below) |
| selectors.json | partition, host_partitions | net=/block= selector -> the PCI address it first resolved to |
| devices.json | device_detach | each detached device's original driver, override and names |
| memory.json | mem_reserve | each named reservation's node and memory blocks |
| cpu-topology.json | cpu_offline, partition, host_partitions | topology of CPUs taken offline (the kernel drops their topology directory) |
| kexec-normal.json, kexec-crash.json | kexec_load, partition, host_partitions | digest, kernel, initrd, command line and placement of what the slot holds |
| /var/lib/parker-kernel/hardware.json | host_partitions | the hardware the host's partitions were last applied on |

partitions.json also keeps the devices' names before bind, the memory blocks the kernel took offline,
started (single-use), and the pid of an online writer still blocked.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

PARKER_ROOT = '/sys/fs/parker'   # where a Parker Boot Kernel's kernfs is mounted unless told otherwise

STATE_DIR = '/run/parker-kernel'
PARTITIONS = STATE_DIR + '/partitions.json'
SELECTORS = STATE_DIR + '/selectors.json'
DEVICES = STATE_DIR + '/devices.json'
MEMORY = STATE_DIR + '/memory.json'
CPU_TOPOLOGY = STATE_DIR + '/cpu-topology.json'
HARDWARE = '/var/lib/parker-kernel/hardware.json'

TOPOLOGY_KEYS = ('apic_id', 'package', 'die', 'core', 'thread_siblings', 'core_cpus', 'llc')


def kexec_slot(kind):
    """The record of what parker.kernel loaded into the normal or crash kexec slot."""
    return '%s/kexec-%s.json' % (STATE_DIR, kind)


def load(io, path):
    """A record file as a dict; empty when missing or unreadable."""
    data = io.load_json(path, {})
    return data if isinstance(data, dict) else {}


def refreshed_topology(cache, cpu_list, cpus):
    """The topology cache with the entries of ``cpus`` (about to go offline) taken from their facts,
    or None when nothing changes (pure)."""
    updated = dict(cache)
    for cpu in cpu_list:
        if cpu['id'] in cpus and cpu['topology_source'] == 'sysfs':
            updated[str(cpu['id'])] = dict((k, cpu[k]) for k in TOPOLOGY_KEYS)
    return updated if updated != cache else None
