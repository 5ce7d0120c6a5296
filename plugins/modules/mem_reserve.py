#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) parker.kernel contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: mem_reserve
short_description: Take memory from the Boot Kernel at runtime, or validate a boot-time reservation
version_added: 0.1.0
description:
  - O(mode=runtime) offlines or onlines memory blocks through C(/sys/devices/system/memory), chosen by block
    ids, by physical ranges, or by a size on a NUMA node (the module then picks online Movable blocks itself,
    highest addresses first). It returns the physical ranges taken, in the C(SIZE@BASE) form an Application
    Kernel's C(memmap=) uses.
  - Blocks that are busy (EBUSY) are retried until O(busy_timeout); then every block already taken is put
    back and the module fails with the errno.
  - A reservation taken by size is recorded under C(/run/parker-kernel/memory.json) by O(name), so a repeat run
    finds the same blocks and reports no change, and O(state=online) with the same O(name) returns them.
  - O(mode=boot) validates C(parker_cma=), C(memmap=) and C(crashkernel=) against the host (syntax, alignment,
    fit in the node, overlap with what the running kernel uses) and reports whether the running kernel already
    honours them, judged from C(/proc/cmdline), C(/proc/iomem) and C(/proc/meminfo). It never writes; persisting
    the tokens is the job of the command-line role.
  - C(parker_cma=) is laid out by the RFC's rule. V(SIZE) gives each online node, in ascending order,
    roundup(ceil(SIZE / nodes), 1G) until SIZE is reached (so V(1G) on two nodes is 1G on node 0 alone).
    V(NODE:SIZE,...) gives the listed nodes their sizes rounded up to 1G, and a share under 1G (which the kernel
    drops) is refused. The areas the running kernel really reserved are reported beside it, read from the kernel,
    and a node whose reservation failed at boot is a warning.
author:
  - parker.kernel maintainers (@parker-kernel)
extends_documentation_fragment:
  - parker.kernel.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
options:
  mode:
    description: V(runtime) changes memory blocks now; V(boot) validates boot-time reservation tokens.
    type: str
    choices: [runtime, boot]
    default: runtime
  state:
    description: In runtime mode, V(offline) takes the memory and V(online) gives it back.
    type: str
    choices: [offline, online]
    default: offline
  blocks:
    description: Memory block ids, as a list or a list string such as V(32-35).
    type: raw
  ranges:
    description: Physical ranges as V(START-END) or V(SIZE@START); each must be block-aligned.
    type: list
    elements: str
  size:
    description: How much memory to take, as V(512M) or V(2G); a multiple of the block size.
    type: str
  node:
    description: The NUMA node to take O(size) from. Any node when omitted.
    type: int
  name:
    description: Name under which a reservation taken by O(size) is recorded.
    type: str
    default: default
  online_type:
    description: Zone to online blocks into. V(movable) keeps them offlinable later.
    type: str
    choices: [movable, kernel, auto]
    default: movable
  busy_timeout:
    description: Seconds to keep retrying a block that reports EBUSY before rolling back.
    type: int
    default: 30
  force:
    description: Allow offlining more than MemAvailable.
    type: bool
    default: false
  parker_cma:
    description: Boot mode. C(parker_cma=) value, V(SIZE) spread over nodes or V(NODE:SIZE,...).
    type: str
  memmap:
    description: Boot mode. C(memmap=) values such as V(64M$0x30000000), one entry per token.
    type: list
    elements: str
  crashkernel:
    description: Boot mode. C(crashkernel=) value.
    type: str
notes:
  - Only memory in ZONE_MOVABLE offlines reliably. Boot memory usually holds unmovable pages.
'''

EXAMPLES = r'''
- name: Take 256M of movable memory from node 1 for partition p1
  parker.kernel.mem_reserve:
    size: 256M
    node: 1
    name: p1
  register: p1_memory

- name: Give it back
  parker.kernel.mem_reserve:
    state: online
    name: p1
    size: 256M
    node: 1

- name: Offline two explicit blocks
  parker.kernel.mem_reserve:
    blocks: 32-33

- name: Check the boot-time reservation a Parker Boot Kernel needs
  parker.kernel.mem_reserve:
    mode: boot
    parker_cma: "0:2G,1:2G"
    crashkernel: 256M
  register: boot_reservation
'''

RETURN = r'''
blocks:
  description: The memory block ids selected.
  returned: runtime mode
  type: list
  elements: int
  sample: [34, 35]
changed_blocks:
  description: Blocks whose state this call changed.
  returned: runtime mode
  type: list
  elements: int
ranges:
  description: The selected memory as merged physical ranges, with C(start), C(end), C(size) and C(memmap).
  returned: runtime mode
  type: list
  elements: dict
  sample: [{start: 4563402752, end: 4831838207, size: 268435456, memmap: 256M@0x110000000}]
size:
  description: Bytes selected.
  returned: runtime mode
  type: int
block_size:
  description: The memory block size in bytes.
  returned: runtime mode
  type: int
tokens:
  description: The kernel command-line tokens for the reservation.
  returned: boot mode
  type: list
  elements: str
  sample: ["parker_cma=0:2G,1:2G", "crashkernel=256M"]
honoured:
  description: For each token, whether the running kernel already honours it.
  returned: boot mode
  type: dict
reboot_required:
  description: True when a token is not yet honoured by the running kernel.
  returned: boot mode
  type: bool
cma_expected:
  description: The Parker CMA areas O(parker_cma) gives by the RFC's rule on this host's online nodes (C(node), C(size)).
  returned: boot mode with parker_cma
  type: list
  elements: dict
  sample: [{node: 0, size: 1073741824}]
cma_areas:
  description:
    - The Parker CMA areas the running kernel reserved, as C(ansible_facts.parker_kernel.parker.cma) of
      M(parker.kernel.partition_facts); null when neither the command line nor the kernel says anything.
  returned: boot mode with parker_cma
  type: dict
actions:
  description: The writes performed, or that would be performed in check mode.
  returned: always
  type: list
  elements: str
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.parker.kernel.plugins.module_utils._common import execute
from ansible_collections.parker.kernel.plugins.module_utils._memory import run_mem_reserve


def main():
    module = AnsibleModule(
        argument_spec=dict(
            mode=dict(type='str', choices=['runtime', 'boot'], default='runtime'),
            state=dict(type='str', choices=['offline', 'online'], default='offline'),
            blocks=dict(type='raw'),
            ranges=dict(type='list', elements='str'),
            size=dict(type='str'),
            node=dict(type='int'),
            name=dict(type='str', default='default'),
            online_type=dict(type='str', choices=['movable', 'kernel', 'auto'], default='movable'),
            busy_timeout=dict(type='int', default=30),
            force=dict(type='bool', default=False),
            parker_cma=dict(type='str'),
            memmap=dict(type='list', elements='str'),
            crashkernel=dict(type='str'),
        ),
        mutually_exclusive=[['blocks', 'ranges', 'size']],
        supports_check_mode=True,
    )
    execute(module, run_mem_reserve)


if __name__ == '__main__':
    main()
