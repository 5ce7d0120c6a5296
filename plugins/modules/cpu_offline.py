#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) parker.kernel contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: cpu_offline
short_description: Take CPUs out of the Boot Kernel, or give them back, in one call
version_added: 0.1.0
description:
  - Offlines or onlines a whole list of logical CPUs through C(/sys/devices/system/cpu/cpuN/online).
  - The whole request is validated against the host before the first write. If a write fails part-way,
    the CPUs already changed are put back, and the module fails with the kernel's errno.
  - Refuses CPUs that are not present, the boot CPU, a result with fewer whole online housekeeping cores
    than O(min_housekeeping_cores), a split of SMT siblings, and onlining CPUs a Parker partition holds.
  - Saves the topology of CPUs it offlines under C(/run/parker-kernel), because the kernel removes an
    offline CPU's C(topology) directory.
author:
  - parker.kernel maintainers (@parker-kernel)
extends_documentation_fragment:
  - parker.kernel.attributes
  - parker.kernel.attributes.SAFETY
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
options:
  cpus:
    description:
      - The CPUs, as a kernel cpulist (V(2-7), V(8-15:2/4), V(4-N)) or a list of numbers and cpulists.
    type: raw
    required: true
  state:
    description:
      - V(offline) takes the CPUs from the Boot Kernel; V(online) gives them back.
    type: str
    choices: [offline, online]
    default: offline
  min_housekeeping_cores:
    description:
      - Whole cores (every SMT sibling online) that must stay online after offlining.
    type: int
    default: 1
  allow_smt_split:
    description:
      - Allow a request that leaves some threads of a core online and others offline.
    type: bool
    default: false
seealso:
  - name: CPU hotplug in the kernel
    description: The sysfs interface this module drives.
    link: https://docs.kernel.org/core-api/cpu_hotplug.html
'''

EXAMPLES = r'''
- name: Give CPUs 2-7 to an Application Kernel
  parker.kernel.cpu_offline:
    cpus: 2-7
    state: offline

- name: Return them to the Boot Kernel
  parker.kernel.cpu_offline:
    cpus: [2, 3, "4-7"]
    state: online
'''

RETURN = r'''
cpus:
  description: The requested CPUs, as a canonical cpulist.
  returned: success
  type: str
  sample: 2-7
changed_cpus:
  description: The CPUs this call changed (empty when nothing needed to change).
  returned: success
  type: str
  sample: 4-7
before:
  description: Online and offline cpulists before the call.
  returned: success
  type: dict
  sample: {online: 0-7, offline: ""}
after:
  description: Online and offline cpulists after the call, read back from the kernel (predicted in check mode).
  returned: success
  type: dict
  sample: {online: 0-1, offline: 2-7}
actions:
  description: The writes performed, or that would be performed in check mode.
  returned: always
  type: list
  elements: str
  sample: ["write /sys/devices/system/cpu/cpu2/online <- 0"]
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.parker.kernel.plugins.module_utils._common import execute, SAFETY_ARGUMENT_SPEC
from ansible_collections.parker.kernel.plugins.module_utils._cpu import run_cpu_offline


def main():
    module = AnsibleModule(
        argument_spec=dict(
            cpus=dict(type='raw', required=True),
            state=dict(type='str', choices=['offline', 'online'], default='offline'),
            min_housekeeping_cores=dict(type='int', default=1),
            allow_smt_split=dict(type='bool', default=False),
            **SAFETY_ARGUMENT_SPEC
        ),
        supports_check_mode=True,
    )
    execute(module, run_cpu_offline)


if __name__ == '__main__':
    main()
