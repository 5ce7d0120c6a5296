#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) parker.kernel contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: device_detach
short_description: Detach PCI devices from their Boot Kernel drivers, or give them back
version_added: 0.1.0
description:
  - Detaches a list of PCI devices from their host drivers and sets C(driver_override), or reattaches them
    to exactly the driver they had before.
  - The original driver of each device is recorded in C(/run/parker-kernel/devices.json) on the host, so
    O(state=attached) restores that driver and not whichever driver probes first.
  - Refuses, before any write, the device that carries the SSH connection or the default route, the
    controller of the root filesystem, a device whose IOMMU group holds devices not being detached, and any
    device a Parker partition has claimed (writing its host C(unbind) crashed a real Boot Kernel).
  - If a write fails part-way, every earlier write is undone and the module fails with the errno.
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
  devices:
    description:
      - PCI addresses (V(0000:00:03.0) or V(00:03.0)) or selectors V(VVVV:DDDD) (vendor:device),
        V(class=0x010000) (class prefix), V(net=eth1) (network interface) or V(block=vdb) (disk).
    type: list
    elements: str
    required: true
  state:
    description: V(detached) takes the devices from their host drivers; V(attached) gives them back.
    type: str
    choices: [detached, attached]
    default: detached
  driver_override:
    description:
      - The driver a detached device is bound to. V(none) leaves it unbound, with C(driver_override) set to
        V(none) so that no driver binds it. V(pci-stub), V(vfio-pci) or another driver name binds that driver
        (loaded with modprobe if needed).
    type: str
    default: none
'''

EXAMPLES = r'''
- name: Hand the second NIC and the scratch disk to an Application Kernel
  parker.kernel.device_detach:
    devices:
      - net=eth1
      - 0000:00:03.0
    driver_override: pci-stub

- name: Give them back to their original drivers
  parker.kernel.device_detach:
    devices: [net=eth1, 0000:00:03.0]
    state: attached
'''

RETURN = r'''
devices:
  description: The PCI addresses the request resolved to.
  returned: success
  type: list
  elements: str
  sample: ["0000:00:03.0", "0000:00:06.0"]
changed_devices:
  description: Devices whose binding this call changed.
  returned: success
  type: list
  elements: str
steps:
  description: For each changed device, its driver and override before and after.
  returned: success
  type: list
  elements: dict
  sample: [{address: "0000:00:03.0", from: virtio-pci, to: null, override_before: null, override: none}]
original_drivers:
  description: The recorded original driver of each device.
  returned: success
  type: dict
  sample: {"0000:00:03.0": virtio-pci}
actions:
  description: The writes performed, or that would be performed in check mode.
  returned: always
  type: list
  elements: str
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.parker.kernel.plugins.module_utils._common import execute, SAFETY_ARGUMENT_SPEC
from ansible_collections.parker.kernel.plugins.module_utils._pci import run_device_detach


def main():
    module = AnsibleModule(
        argument_spec=dict(
            devices=dict(type='list', elements='str', required=True),
            state=dict(type='str', choices=['detached', 'attached'], default='detached'),
            driver_override=dict(type='str', default='none'),
            **SAFETY_ARGUMENT_SPEC
        ),
        supports_check_mode=True,
    )
    execute(module, run_device_detach)


if __name__ == '__main__':
    main()
