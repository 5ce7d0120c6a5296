#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) parker.kernel contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: partition
short_description: Create, start and remove a Parker partition
version_added: 0.1.0
description:
  - Drives the Parker kernfs (C(/sys/fs/parker) by default) in the order the RFC requires. O(state=present)
    creates the partition and gives it CPUs (the kernel offlines them), memory from the C(parker_cma=) area (an
    C(ENOMEM) is retried after dropping caches and compacting, as a real Boot Kernel needed) and PCI devices
    (bound to their host drivers, as Parker's C(bind) requires).
  - O(state=started) also loads the Application Kernel with a normal kexec load placed inside the partition's
    memory, with C(parker=<control page> memmap=exactmap memmap=SIZE@BASE) and the given tokens on its command
    line, writes C(online) with a timeout, and clears the host's kexec slot afterwards. Starts are serialised
    under a host lock.
  - O(state=absent) removes a partition whose Application Kernel has shut itself down, which returns its CPUs,
    memory and devices to the Boot Kernel. Parker has no host-side stop, so a running partition is refused.
  - To manage all of a host's partitions together (limits that span the host checked for the whole set, health
    probes, drift), use M(parker.kernel.host_partitions); this module handles one and leaves the others alone.
  - Everything is validated before the first write. An existing partition's resources are never rewritten (a
    C(cpus) rewrite leaks CPUs in the RFC); a different request is refused unless O(replace=true) and the
    partition is not running. If a step fails, the partition is removed again, which returns what it held, and its
    record under C(/run/parker-kernel) goes with it.
  - A Parker Boot Kernel does not mount its kernfs at boot. When the kernel has the C(parker) filesystem
    (C(/proc/filesystems), C(CONFIG_PARKER=y) or a C(mount.parker) helper) and nothing is mounted at
    O(parker_root), the module runs C(mount -t parker none <parker_root>) first, as an action of its own (see
    O(mount_kernfs)). In check mode it only says it would, and plans as for an empty kernfs.
  - C(net=) and C(block=) selectors are pinned to the PCI address they first resolved to, for the rest of the boot
    (C(/run/parker-kernel/selectors.json)), because a device handed back by C(rmdir) can come back under another
    name.
author:
  - parker.kernel maintainers (@parker-kernel)
extends_documentation_fragment:
  - parker.kernel.attributes
  - parker.kernel.attributes.SAFETY
  - parker.kernel.attributes.PARTITION
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
options:
  name:
    description: The partition's directory name under O(parker_root).
    type: str
    required: true
  state:
    description: V(present) holds the resources, V(started) also boots the Application Kernel, V(absent) removes it.
    type: str
    choices: [present, started, absent]
    default: present
  cpus:
    description: The partition's CPUs as a cpulist. Required unless O(state=absent).
    type: raw
  memory:
    description: The partition's memory, such as V(4G). Required unless O(state=absent).
    type: str
  devices:
    description: PCI addresses or selectors (see M(parker.kernel.device_detach)) handed to the partition.
    type: list
    elements: str
    default: []
  kernel:
    description: The Application Kernel image on the host. Required with O(state=started).
    type: path
  initrd:
    description: Its initrd.
    type: path
  ip:
    description: The Application Kernel's C(ip=) value, for example from the C(parker.kernel.cmdline_ip) filter.
    type: str
notes:
  - Memory comes from the Parker CMA area of the node of the partition's first CPU, in whole GiB per partition.
    The areas are read on every run from what the kernel reports (debugfs C(cma/parker<N>),
    C(/sys/kernel/mm/cma/parker<N>), the C(parker:) lines of the kernel log). A request that does not fit is
    refused, and a node whose reservation failed at boot is named. When the kernel reports nothing, the layout
    C(parker_cma=) should give is only an expectation, and a misfit is a warning, not a refusal.
  - O(state=started) succeeding means the Application Kernel set C(online), which it does at the end of its PCI
    scan, before timers, network or init run. It is not health, and the host cannot see which of the partition's CPUs
    the instance brought up (the kernfs shows only the control page's address). M(parker.kernel.host_partitions)
    probes each Application Kernel at its own address, which is what says it works.
  - A start that times out leaves the writer blocked in the kernel, which holds Parker's global mutex until the
    host reboots; the failure says so. The writer is a process of its own, so the task still ends at the timeout.
'''

EXAMPLES = r'''
- name: Hold resources for partition p1
  parker.kernel.partition:
    name: p1
    cpus: 8-15
    memory: 4G
    devices: [net=ens2f1]

- name: Boot its Application Kernel
  parker.kernel.partition:
    name: p1
    state: started
    cpus: 8-15
    memory: 4G
    devices: [net=ens2f1]
    kernel: /boot/vmlinuz-parker
    initrd: /boot/initrd-p1
    console: ttyS1,115200
    ip: "{{ {'address': '192.0.2.10/24', 'gateway': '192.0.2.1', 'iface': 'eth0'} | parker.kernel.cmdline_ip }}"

- name: Hand everything back after the Application Kernel powered itself off
  parker.kernel.partition:
    name: p1
    state: absent
'''

RETURN = r'''
name:
  description: The partition.
  returned: always
  type: str
cpus:
  description: The CPUs the partition holds.
  returned: unless state is absent
  type: str
  sample: 8-15
memory:
  description: The memory the partition holds, C(size) and C(start) in bytes.
  returned: unless state is absent
  type: dict
memmap:
  description: The same memory as the Application Kernel's C(memmap=) value.
  returned: unless state is absent
  type: str
  sample: 4G@0x100000000
devices:
  description: The PCI devices the partition holds.
  returned: unless state is absent
  type: list
  elements: str
control_structure:
  description: Physical address of the control page (the Application Kernel's C(parker=) value).
  returned: unless state is absent
  type: str
online:
  description: Whether the Application Kernel reports itself online. False in check mode for a partition not yet built.
  returned: unless state is absent
  type: bool
started:
  description: Whether this run started the Application Kernel (or would, in check mode), or it already runs.
  returned: unless state is absent
  type: bool
instance_cpus:
  description: Which of the partition's CPUs run the Application Kernel; always null, the host cannot see it.
  returned: when started is true
  type: str
instance_cpus_note:
  description: Why O(state=started) does not say that the Application Kernel is healthy.
  returned: when started is true
  type: str
selectors:
  description: The PCI address each C(net=) or C(block=) selector of the request stands for.
  returned: unless state is absent
  type: dict
  sample: {"net=eth1": "0000:00:06.0"}
mounted_kernfs:
  description: Whether this run mounted the Parker kernfs (or would have, in check mode).
  returned: always
  type: bool
returned:
  description: What O(state=absent) handed back to the Boot Kernel.
  returned: when state is absent
  type: dict
actions:
  description: The writes and commands performed, or that would be in check mode.
  returned: always
  type: list
  elements: str
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.parker.kernel.plugins.module_utils._common import execute, SAFETY_ARGUMENT_SPEC
from ansible_collections.parker.kernel.plugins.module_utils._partition import run_partition, PARTITION_ARGUMENT_SPEC


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type='str', required=True),
            state=dict(type='str', choices=['present', 'started', 'absent'], default='present'),
            cpus=dict(type='raw'),
            memory=dict(type='str'),
            devices=dict(type='list', elements='str', default=[]),
            kernel=dict(type='path'),
            initrd=dict(type='path'),
            ip=dict(type='str'),
            **dict(SAFETY_ARGUMENT_SPEC, **PARTITION_ARGUMENT_SPEC)
        ),
        required_if=[('state', 'present', ['cpus', 'memory']), ('state', 'started', ['cpus', 'memory', 'kernel'])],
        supports_check_mode=True,
    )
    execute(module, run_partition)


if __name__ == '__main__':
    main()
