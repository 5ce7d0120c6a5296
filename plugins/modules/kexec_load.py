#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) parker.kernel contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: kexec_load
short_description: Load or unload a kernel in the kexec slot, idempotently
version_added: 0.1.0
description:
  - Loads a kernel, initrd and command line into the normal or crash kexec slot with kexec-tools, or unloads it.
  - The kernel only says whether an image is loaded, not which one. The module keeps a SHA-256 digest of
    kernel, initrd, command line and placement in C(/run/parker-kernel/kexec-TYPE.json) and compares it with
    C(/sys/kernel/kexec_loaded), so a repeat run reports no change.
  - O(method=auto) tries C(kexec_file_load) first and falls back to C(kexec_load). Kernel lockdown and
    C(kexec_load_disabled) are detected before anything runs and fail with a clear message.
  - Never executes the loaded kernel.
author:
  - parker.kernel maintainers (@parker-kernel)
extends_documentation_fragment:
  - parker.kernel.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
requirements:
  - kexec-tools on the managed host
options:
  kernel:
    description: Path of the kernel image on the host. Required with O(state=loaded).
    type: path
  initrd:
    description: Path of the initrd on the host.
    type: path
  cmdline:
    description: The command line for the loaded kernel. Ignored with O(reuse_cmdline=true).
    type: str
    default: ''
  reuse_cmdline:
    description: Start from the running kernel's C(/proc/cmdline) (without C(BOOT_IMAGE=)).
    type: bool
    default: false
  cmdline_add:
    description: Tokens to add; a C(key=value) token replaces earlier tokens with the same key.
    type: list
    elements: str
  cmdline_remove:
    description: Tokens to remove, by exact C(key=value) or by bare key.
    type: list
    elements: str
  state:
    description: V(loaded) or V(unloaded).
    type: str
    choices: [loaded, unloaded]
    default: loaded
  type:
    description: V(normal) for the slot C(kexec -e) and Parker start from, V(crash) for the panic kernel.
    type: str
    choices: [normal, crash]
    default: normal
  mem_min:
    description:
      - Lowest physical address for the image's segments (C(--mem-min)), as Parker needs to place an
        Application Kernel inside its partition's memory. Forces the C(kexec_load) syscall.
    type: str
  mem_max:
    description: Highest physical address for the image's segments (C(--mem-max)).
    type: str
  method:
    description: V(file) is C(kexec_file_load), V(legacy) is C(kexec_load), V(auto) tries file first.
    type: str
    choices: [auto, file, legacy]
    default: auto
'''

EXAMPLES = r'''
- name: Load the installed kernel with the running command line plus one token
  parker.kernel.kexec_load:
    kernel: /boot/vmlinuz-{{ ansible_facts.kernel }}
    initrd: /boot/initrd.img-{{ ansible_facts.kernel }}
    reuse_cmdline: true
    cmdline_add: [mitigations=auto]

- name: Load an Application Kernel inside its partition's memory
  parker.kernel.kexec_load:
    kernel: /boot/vmlinuz-parker
    initrd: /boot/initrd-p1
    cmdline: "parker=0x1417d9000 memmap=exactmap memmap=4G@0x100000000 console=ttyS0"
    mem_min: "0x100000000"
    mem_max: "0x1ffffffff"

- name: Clear the slot
  parker.kernel.kexec_load:
    state: unloaded
'''

RETURN = r'''
loaded:
  description: Whether the slot holds the requested image after the call.
  returned: always
  type: bool
type:
  description: The slot, V(normal) or V(crash).
  returned: always
  type: str
method:
  description: The syscall used, V(file) or V(legacy) (V(auto) in check mode before anything ran).
  returned: when loaded
  type: str
cmdline:
  description: The command line given to the loaded kernel.
  returned: when loaded
  type: str
digest:
  description: SHA-256 over kernel, initrd, command line and placement.
  returned: when loaded
  type: str
previous:
  description: Digest of the image that was in the slot before, when parker.kernel had loaded it.
  returned: when changed
  type: str
actions:
  description: The commands run, or that would run in check mode.
  returned: always
  type: list
  elements: str
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.parker.kernel.plugins.module_utils._common import execute
from ansible_collections.parker.kernel.plugins.module_utils._kexec import run_kexec_load


def main():
    module = AnsibleModule(
        argument_spec=dict(
            kernel=dict(type='path'),
            initrd=dict(type='path'),
            cmdline=dict(type='str', default=''),
            reuse_cmdline=dict(type='bool', default=False),
            cmdline_add=dict(type='list', elements='str'),
            cmdline_remove=dict(type='list', elements='str'),
            state=dict(type='str', choices=['loaded', 'unloaded'], default='loaded'),
            type=dict(type='str', choices=['normal', 'crash'], default='normal'),
            mem_min=dict(type='str'),
            mem_max=dict(type='str'),
            method=dict(type='str', choices=['auto', 'file', 'legacy'], default='auto'),
        ),
        required_if=[('state', 'loaded', ['kernel'])],
        supports_check_mode=True,
    )
    execute(module, run_kexec_load)


if __name__ == '__main__':
    main()
