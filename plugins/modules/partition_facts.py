#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) parker.kernel contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: partition_facts
short_description: Gather what a partition planner needs to know about a host, in one call
version_added: 0.1.0
description:
  - Reads CPU topology, NUMA nodes, memory blocks, reservations, PCI devices, kexec state, kernel
    configuration and command line, and the Parker kernfs, and returns them as
    C(ansible_facts.parker_kernel).
  - Read-only. It marks the PCI devices that carry the default route, the current SSH connection,
    and the root filesystem, so later tasks can refuse to detach them.
author:
  - parker.kernel maintainers (@parker-kernel)
extends_documentation_fragment:
  - parker.kernel.attributes
  - parker.kernel.attributes.FACTS
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  facts:
    support: full
options:
  gather_subset:
    description:
      - Which groups of facts to gather. V(all) gathers every group.
    type: list
    elements: str
    choices: [all, cpus, numa, memory, reservations, pci, kexec, kernel, parker]
    default: [all]
  parker_root:
    description:
      - Where the Parker kernfs is mounted.
    type: path
    default: /sys/fs/parker
'''

EXAMPLES = r'''
- name: Gather partitioning facts
  parker.kernel.partition_facts:

- name: Only CPUs and memory blocks
  parker.kernel.partition_facts:
    gather_subset: [cpus, memory]

- name: Show which CPUs are online
  ansible.builtin.debug:
    msg: "{{ ansible_facts.parker_kernel.cpus.online }}"
'''

RETURN = r'''
ansible_facts:
  description: Facts to add to ansible_facts.
  returned: always
  type: complex
  contains:
    parker_kernel:
      description: Host partitioning facts, one key per gathered subset.
      returned: always
      type: complex
      contains:
        cpus:
          description:
            - C(possible), C(present), C(online), C(offline), C(boot_cpus) as cpulists, C(model) (the CPU model
              name), and C(list) with each CPU's C(id), C(online), C(hotpluggable), C(node), C(apic_id), C(package),
              C(die), C(core), C(thread_siblings), C(core_cpus), C(llc) (the CPUs sharing its last-level cache, from
              C(cache/index3/shared_cpu_list)) and C(topology_source) (V(sysfs) or V(cached)).
          returned: when gathered
          type: dict
        numa:
          description: C(nodes), each with C(id), C(cpus), C(mem_total), C(mem_free) and C(distances).
          returned: when gathered
          type: dict
        memory:
          description: C(block_size), C(auto_online_blocks) and C(blocks) (C(id), C(start), C(end), C(state),
            C(valid_zones), C(removable), C(node)).
          returned: when gathered
          type: dict
        reservations:
          description: Reserved, Crash kernel and RAM ranges from /proc/iomem, C(cma_total), C(cma_free),
            C(mem_total) and C(mem_available) in bytes.
          returned: when gathered
          type: dict
        pci:
          description:
            - C(devices) with C(address), C(vendor), C(device), C(class), C(driver), C(driver_override),
              C(numa_node), C(iommu_group), C(sriov_vf) (an SR-IOV virtual function), C(net), C(block),
              C(default_route), C(ssh), C(root_fs), C(in_use) and C(claimed_by).
            - C(in_use) is a list of sentences, one per reason the Boot Kernel uses the device (a mount, swap, an
              LVM, MD, dm-crypt or multipath holder, a process holding one of its device nodes open, an address, a
              route, a bond or bridge), each naming the holder; the modules that take a device refuse it while the
              list is not empty.
            - C(claimed_by) names the Parker partition that lists the device under C(devices/). A claimed device
              keeps its host driver's C(driver) link on a real kernel, so C(driver) does not say it is free.
          returned: when gathered
          type: dict
        kexec:
          description: C(loaded), C(crash_loaded), C(crash_size), C(kexec_load_disabled) and C(lockdown).
          returned: when gathered
          type: dict
        kernel:
          description: C(release), C(version), C(config) (the options that matter), C(cmdline) as tokens and
            C(bootloader).
          returned: when gathered
          type: dict
        parker:
          description:
            - C(present) (the root directory exists), C(mounted) and C(fs_type) (from C(/proc/mounts)),
              C(filesystem_available) and C(filesystem_source) (C(/proc/filesystems), C(CONFIG_PARKER) or a
              C(mount.parker) helper), and C(partitions). Nothing is mounted at boot; an unmounted root shows no
              partitions (M(parker.kernel.partition) mounts it).
            - C(blocked_starts) lists starts whose write to C(online) still blocks in the kernel; Parker's mutex is
              held then, so the partitions are not read (C(partitions) is empty).
            - C(cma) is null when neither the command line nor the kernel says anything about Parker CMA areas.
              Otherwise it has C(known) (the kernel reported them), C(sources) (V(debugfs), V(sysfs), V(kmsg)),
              C(parker_cma), C(areas) (per node C(node), C(size), C(used), C(free), C(base), in bytes where known,
              and C(source), V(expected) when only C(parker_cma=) gives the size), C(failed_nodes) (reservation
              failed at boot), C(expected) (the RFC's layout for C(parker_cma=)), C(cma_total), C(cma_free)
              and C(warnings). Read on every run and never cached, since physical KASLR changes the areas from
              boot to boot.
          returned: when gathered
          type: dict
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.parker.kernel.plugins.module_utils._common import require_target_python
from ansible_collections.parker.kernel.plugins.module_utils._hostio import HostIO
from ansible_collections.parker.kernel.plugins.module_utils._facts import gather, SUBSETS
from ansible_collections.parker.kernel.plugins.module_utils._state import PARKER_ROOT


def main():
    module = AnsibleModule(
        argument_spec=dict(
            gather_subset=dict(type='list', elements='str', default=['all'], choices=['all'] + list(SUBSETS)),
            parker_root=dict(type='path', default=PARKER_ROOT),
        ),
        supports_check_mode=True,
    )
    require_target_python(module)
    subsets = module.params['gather_subset']
    if 'all' in subsets:
        subsets = SUBSETS
    facts = gather(HostIO('/'), subsets, module.params['parker_root'])
    for warning in ((facts.get('parker') or {}).get('cma') or {}).get('warnings') or []:
        module.warn(warning)
    module.exit_json(changed=False, ansible_facts={'parker_kernel': facts})


if __name__ == '__main__':
    main()
