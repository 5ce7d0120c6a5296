#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) parker.kernel contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: host_partitions
short_description: A host's whole set of Parker partitions in one call, with drift and health
version_added: 0.1.0
description:
  - Takes every partition the host should have and a state, and does the whole job in one round trip. It reads
    the kernel once, plans every partition together, refuses the host with every problem before the first write,
    applies, verifies once against the kernel and probes each Application Kernel from the host itself.
  - Limits that span the host are checked for the whole set, not partition by partition. These are the whole cores
    left to the Boot Kernel (O(min_housekeeping_cores)), SMT cores split between owners, each NUMA node's Parker CMA
    area, a CPU or device asked for twice, devices the Boot Kernel uses and what the kernel already holds.
  - O(state=started) builds each partition in turn (C(mkdir), C(cpus), C(memory), C(bind), as
    M(parker.kernel.partition) does) and starts its Application Kernel, one at a time (one kexec slot). Then it
    probes each at its own address, by ICMP echo or a TCP connect to O(partitions[].health.port), until it answers
    or O(health_timeout) passes. Only that answer makes a partition healthy. O(state=present) holds the resources
    only. O(state=absent) removes the listed partitions after their Application Kernels powered themselves off
    (Parker has no host-side stop; see O(poweroff_timeout)).
  - A failure while applying undoes the partition it happened in. Partitions done before it stay (an Application
    Kernel cannot be stopped from the host), and the failure names them.
  - Drift is what differs from the plan. It is reported on every run, check mode included; C(playbooks/verify.yml)
    runs this module in check mode for that. One kind is repaired by the apply, namely a partition's CPU or memory
    block the Boot Kernel took back (offlined again) and a missing partition (built). The other kind is refused,
    naming it. That covers a device a host driver took back, an Application Kernel that does not answer or has
    stopped, a partition not in the list (with O(exclusive)), a token of O(boot_tokens) missing from
    C(/proc/cmdline), and hardware that changed since the plan (see O(hardware)).
  - In check mode the result is the plan. C(actions) lists every write and command it would run, and nothing is
    written. With C(--diff) it shows the host's partition view before and after, namely the Boot Kernel's CPUs and
    kexec slot, and for each partition its CPUs, memory range, devices with their drivers, and C(online).
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
  partitions:
    description: Every partition the host should have, in the order they are built and started.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: The partition's directory name under O(parker_root).
        type: str
        required: true
      cpus:
        description: Its CPUs as a cpulist. Required unless O(state=absent).
        type: raw
      memory:
        description: Its memory, such as V(4G), from the Parker CMA area of its first CPU's node.
        type: str
      devices:
        description: PCI addresses or selectors (see M(parker.kernel.device_detach)).
        type: list
        elements: str
      start:
        description: Boot an Application Kernel in it with O(state=started); V(false) holds the resources only.
        type: bool
        default: true
      kernel:
        description: Its Application Kernel image on the host (default O(kernel)).
        type: path
      initrd:
        description: Its initrd (default O(initrd)).
        type: path
      console:
        description: Its C(console=) value (default O(console)).
        type: str
      root:
        description: Its C(root=) value (default O(root)).
        type: str
      ip:
        description: Its C(ip=) value as the kernel takes it. O(partitions[].network) renders one.
        type: str
      network:
        description:
          - Its address, rendered as C(ip=addr::gateway:netmask:hostname:iface:off). The health probe expects the
            Application Kernel to answer at this address.
        type: dict
        suboptions:
          address:
            description: IPv4 address with prefix length, such as V(192.0.2.11/24).
            type: str
            required: true
          gateway:
            description: The gateway.
            type: str
          hostname:
            description: Its host name.
            type: str
          iface:
            description: The interface the Application Kernel configures.
            type: str
      health:
        description: How the health probe reaches it; without a port, ICMP echo to O(partitions[].network.address).
        type: dict
        suboptions:
          address:
            description: Another address to probe.
            type: str
          port:
            description: Probe this TCP port instead of ICMP echo.
            type: int
      cmdline:
        description: More tokens for its command line, after O(cmdline).
        type: list
        elements: str
      nokaslr:
        description: Put C(nokaslr) on its line (default O(nokaslr)).
        type: bool
      tsc_early_khz:
        description: Its C(tsc_early_khz=) (default O(tsc_early_khz)).
        type: str
  state:
    description: V(started) holds the resources and boots each Application Kernel, V(present) only holds them,
      V(absent) removes the listed partitions.
    type: str
    choices: [started, present, absent]
    default: started
  exclusive:
    description:
      - The list is the host's whole set. A partition the kernel holds that is not listed is drift, and it is
        refused with O(state=started) or O(state=present). V(false) leaves unlisted partitions alone.
    type: bool
    default: true
  kernel:
    description: The Application Kernel image for partitions that do not name one.
    type: path
  initrd:
    description: The initrd for partitions that do not name one.
    type: path
  health_check:
    description: Probe each Application Kernel with an address, from this host.
    type: bool
    default: true
  health_timeout:
    description: Seconds a started Application Kernel has to answer its probe.
    type: int
    default: 120
  boot_tokens:
    description: Tokens the Boot Kernel's running command line must carry; one missing is drift, and refused.
    type: list
    elements: str
    default: []
  hardware:
    description:
      - The hardware the plan was made for, as this module returns it in C(hardware.now). Without it, the
        hardware recorded at the last apply on this host (C(/var/lib/parker-kernel/hardware.json)) is compared.
        Hardware that differs is refused unless O(accept_hardware).
    type: dict
  accept_hardware:
    description: Apply although the hardware changed, and record the hardware as it is now.
    type: bool
    default: false
notes:
  - Results of every run carry C(status) (V(in plan), V(drifted) or V(hardware changed)), C(drift), and C(metrics), the
    same as node_exporter textfile metrics. A refusal carries C(status), C(drift) and C(problems) too.
  - The start, the kernfs rules and the Parker CMA checks are those of M(parker.kernel.partition).
seealso:
  - module: parker.kernel.partition
  - module: parker.kernel.partition_facts
'''

EXAMPLES = r'''
- name: The host's partitions, started and probed
  parker.kernel.host_partitions:
    kernel: /boot/vmlinuz-parker
    initrd: /boot/initrd-parker
    console: ttyS1,115200
    partitions:
      - name: p1
        cpus: 8-15
        memory: 4G
        devices: [net=ens2f1]
        network: {address: 192.0.2.11/24, gateway: 192.0.2.1, hostname: p1}
      - name: p2
        cpus: 24-31
        memory: 4G
        devices: [net=ens2f2]
        network: {address: 192.0.2.12/24, gateway: 192.0.2.1, hostname: p2}
        health: {port: 22}

- name: Is the host still as planned? (writes nothing)
  parker.kernel.host_partitions:
    partitions: "{{ parker_partitions }}"
  check_mode: true
  register: verdict
  failed_when: false

- name: Hand everything back once the Application Kernels powered themselves off
  parker.kernel.host_partitions:
    state: absent
    poweroff_timeout: 300
    partitions: [{name: p1}, {name: p2}]
'''

RETURN = r'''
status:
  description: V(in plan), V(drifted) or V(hardware changed), before this run's repairs (V(in plan) after them).
  returned: always
  type: str
drift:
  description:
    - What differs from the plan, each with C(kind) (V(cpu_online), V(memory_online), V(device_returned),
      V(not_answering), V(stopped), V(missing), V(extra), V(cmdline)), C(partition), C(message) and C(repair)
      (V(repair) or V(refuse)).
  returned: always
  type: list
  elements: dict
repaired:
  description: The drift this run repaired.
  returned: when something was repaired
  type: list
  elements: str
hardware:
  description: C(now) (CPUs and memory per node, PCI functions), C(planned) and C(changes) (sentences).
  returned: always
  type: dict
partitions:
  description:
    - One report per listed partition, with C(name), C(action) (V(create), V(resume), V(replace), V(keep),
      V(finish), V(remove), V(absent)), C(changed), C(cpus), C(memory), C(memmap), C(devices),
      C(control_structure), C(online), C(started), C(selectors), C(healthy) and C(health) (what the probe saw),
      or C(returned) with O(state=absent).
  returned: always
  type: list
  elements: dict
extra:
  description: Partitions the kernel holds that are not listed.
  returned: always
  type: list
  elements: str
problems:
  description: Every reason the host was refused.
  returned: when refused
  type: list
  elements: str
metrics:
  description: The status, drift, online and health as node_exporter textfile metrics.
  returned: always
  type: str
mounted_kernfs:
  description: Whether this run mounted the Parker kernfs (or would, in check mode).
  returned: always
  type: bool
actions:
  description: The writes and commands performed, or that would be in check mode (the plan).
  returned: always
  type: list
  elements: str
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.parker.kernel.plugins.module_utils._common import execute, SAFETY_ARGUMENT_SPEC
from ansible_collections.parker.kernel.plugins.module_utils._partition import run_host_partitions, PARTITION_ARGUMENT_SPEC


def main():
    module = AnsibleModule(
        argument_spec=dict(
            partitions=dict(type='list', elements='dict', required=True, options=dict(
                name=dict(type='str', required=True),
                cpus=dict(type='raw'),
                memory=dict(type='str'),
                devices=dict(type='list', elements='str'),
                start=dict(type='bool', default=True),
                kernel=dict(type='path'),
                initrd=dict(type='path'),
                console=dict(type='str'),
                root=dict(type='str'),
                ip=dict(type='str'),
                network=dict(type='dict', options=dict(
                    address=dict(type='str', required=True),
                    gateway=dict(type='str'),
                    hostname=dict(type='str'),
                    iface=dict(type='str'),
                )),
                health=dict(type='dict', options=dict(
                    address=dict(type='str'),
                    port=dict(type='int'),
                )),
                cmdline=dict(type='list', elements='str'),
                nokaslr=dict(type='bool'),
                tsc_early_khz=dict(type='str'),
            )),
            state=dict(type='str', choices=['started', 'present', 'absent'], default='started'),
            exclusive=dict(type='bool', default=True),
            kernel=dict(type='path'),
            initrd=dict(type='path'),
            health_check=dict(type='bool', default=True),
            health_timeout=dict(type='int', default=120),
            boot_tokens=dict(type='list', elements='str', default=[], no_log=False),
            hardware=dict(type='dict'),
            accept_hardware=dict(type='bool', default=False),
            **dict(SAFETY_ARGUMENT_SPEC, **PARTITION_ARGUMENT_SPEC)
        ),
        supports_check_mode=True,
    )
    execute(module, run_host_partitions)


if __name__ == '__main__':
    main()
