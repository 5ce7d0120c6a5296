#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) parker.kernel contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: boot_cmdline
short_description: Persist kernel command-line tokens to the bootloader, touching nothing else
version_added: 0.1.0
description:
  - Makes the next boot's kernel command line carry O(present) and lack O(absent), token by token.
  - On Debian GRUB it owns one drop-in under C(/etc/default/grub.d/). The drop-in removes from
    C(GRUB_CMDLINE_LINUX) and C(GRUB_CMDLINE_LINUX_DEFAULT) every token whose key it sets (so nothing is
    duplicated) and every O(absent) token, appends its own, and C(update-grub) regenerates C(grub.cfg).
    C($) in C(memmap=) is escaped for the shell and for GRUB.
  - On the RHEL family it runs C(grubby --update-kernel=ALL) and checks every entry, not only the default.
  - Values are validated before any file is touched. Check mode writes nothing and runs nothing but
    read-only probes; diff mode shows the drop-in before and after.
  - Reports RV(reboot_required) when C(/proc/cmdline) differs from what is persisted. It never reboots;
    the C(parker.kernel.cmdline) role owns the reboot contract.
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
  present:
    description: Tokens the next boot must carry, such as V(crashkernel=256M) or V(memmap=64M$0x30000000).
    type: list
    elements: str
    default: []
  absent:
    description: Tokens (V(key=value)) or bare keys (V(quiet), V(crashkernel)) the next boot must not carry.
    type: list
    elements: str
    default: []
  bootloader:
    description: V(grub) (Debian drop-in and update-grub), V(grubby) (BLS on the RHEL family), or V(auto).
    type: str
    choices: [auto, grub, grubby]
    default: auto
  dropin:
    description: The GRUB drop-in this module owns.
    type: path
    default: /etc/default/grub.d/99-parker-kernel.cfg
  reservations:
    description:
      - Boot Kernel reservations to validate against this host before any file is touched, as
        M(parker.kernel.mem_reserve) O(parker.kernel.mem_reserve#module:mode=boot) does (C(parker_cma) by the RFC's
        layout rule, C(memmap) ranges against the RAM map and the running kernel's image, C(crashkernel)). Their
        tokens still go in O(present); RV(reservations) says whether the running kernel honours them.
      - Other keys (such as C(movablecore)) are ignored here.
    type: dict
    default: {}
  stage:
    description:
      - V(none) persists the line as the default and removes a staged entry; this is the promotion.
      - V(next_boot) leaves the default alone and writes the line as a separate GRUB entry, a copy of the default
        entry with the new line and O(staged_only), then sets GRUB's one-shot C(next_entry) to it. GRUB clears
        the one-shot before it boots the entry, so a line that fails to boot (with C(panic=N) on it) reboots
        into the unchanged default by itself. Refused when grubenv is on a filesystem GRUB cannot write (LVM,
        MD, device-mapper, btrfs), because a one-shot never cleared would boot the staged line every time.
      - V(entry) writes the staged entry without the one-shot, for a kexec into exactly that entry.
      - V(discard) removes a staged entry and its one-shot, nothing else.
      - Staging is GRUB only; it is refused on grubby (BLS) hosts.
      - When the running kernel already carries the line, V(next_boot) and V(entry) stage nothing and remove
        a leftover staged entry; the caller goes straight to its checks and the promotion.
    type: str
    choices: [none, next_boot, entry, discard]
    default: none
    version_added: 0.2.0
  staged_only:
    description: Tokens only the staged entry carries, never the default, such as V(panic=30).
    type: list
    elements: str
    default: []
    version_added: 0.2.0
'''

EXAMPLES = r'''
- name: Reserve memory for Application Kernels at the next boot
  parker.kernel.boot_cmdline:
    present:
      - parker_cma=0:2G,1:2G
      - crashkernel=256M
    absent:
      - quiet
  register: boot_line

- name: Tell the operator
  ansible.builtin.debug:
    msg: "Reboot needed: {{ boot_line.running_missing }}"
  when: boot_line.reboot_required
'''

RETURN = r'''
tokens:
  description: The validated tokens persisted.
  returned: success
  type: list
  elements: str
removed:
  description: Keys and exact tokens the persisted line drops.
  returned: success
  type: list
  elements: str
bootloader:
  description: The bootloader written, V(grub) or V(grubby).
  returned: success
  type: str
reboot_required:
  description: True when the running kernel's C(/proc/cmdline) lacks a persisted token or still has a removed one.
  returned: success
  type: bool
persisted:
  description:
    - True when the bootloader now holds the line. False only in check mode with a pending change, so a
      caller never reboots for a change that was not written (task-level C(check_mode) does not show in
      C(ansible_check_mode)).
  returned: success
  type: bool
check_mode:
  description:
    - True when the module ran in check mode. Task-level C(check_mode) does not show in C(ansible_check_mode), so
      the role reads it here before it reboots into a staged entry.
  returned: success
  type: bool
  version_added: 0.2.0
running_missing:
  description: Persisted tokens the running kernel does not have.
  returned: success
  type: list
  elements: str
running_unwanted:
  description: Tokens the running kernel has that the persisted line removes.
  returned: success
  type: list
  elements: str
next_boot:
  description:
    - The default GRUB entry after the update, C(kernel) and C(initrd) as GRUB sees them (relative to
      C(/boot) when it is a separate partition) and its C(tokens). The role uses it to kexec into exactly
      what a cold boot would start.
  returned: when bootloader is grub and not in check mode
  type: dict
  sample: {kernel: /boot/vmlinuz-6.1.0-44-amd64, initrd: /boot/initrd.img-6.1.0-44-amd64, tokens: [root=UUID=x, ro]}
staged:
  description:
    - The staged entry written by O(stage=next_boot) or O(stage=entry), or C(None) when nothing was staged.
    - C(entry_id), C(kernel) and C(initrd) as GRUB sees them, C(tokens) (the whole staged line), C(next_boot)
      (the one-shot is set), C(default_title) and C(default_tokens) (the entry GRUB boots otherwise).
  returned: when bootloader is grub and O(stage) is not V(none)
  type: dict
staged_found:
  description:
    - A staged entry or one-shot that was on the host before this call (an interrupted staged run), with its
      C(tokens) and whether C(next_boot) was still pending; C(None) when there was none.
  returned: when bootloader is grub
  type: dict
default_entry:
  description: C(title) and C(tokens) of the entry GRUB boots by default, before this call.
  returned: when O(stage) is V(next_boot) or V(entry)
  type: dict
default_current:
  description: The default entry already boots the line and the drop-in keeps it there (nothing to promote).
  returned: when O(stage) is V(next_boot) or V(entry)
  type: bool
dropin:
  description: Path of the GRUB drop-in.
  returned: when bootloader is grub
  type: str
reservations:
  description:
    - For O(reservations), C(tokens), C(honoured) (per token, by the running kernel), C(reboot_required),
      C(cma_expected) and C(cma_areas), as M(parker.kernel.mem_reserve) returns them in boot mode.
  returned: when O(reservations) names parker_cma, memmap or crashkernel
  type: dict
actions:
  description: Files written and commands run, or that would be in check mode.
  returned: always
  type: list
  elements: str
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.parker.kernel.plugins.module_utils._common import execute
from ansible_collections.parker.kernel.plugins.module_utils._bootloader import run_boot_cmdline


def main():
    module = AnsibleModule(
        argument_spec=dict(
            present=dict(type='list', elements='str', default=[]),
            absent=dict(type='list', elements='str', default=[]),
            bootloader=dict(type='str', choices=['auto', 'grub', 'grubby'], default='auto'),
            dropin=dict(type='path', default='/etc/default/grub.d/99-parker-kernel.cfg'),
            reservations=dict(type='dict', default={}),
            stage=dict(type='str', choices=['none', 'next_boot', 'entry', 'discard'], default='none'),
            staged_only=dict(type='list', elements='str', default=[]),
        ),
        supports_check_mode=True,
    )
    execute(module, run_boot_cmdline)


if __name__ == '__main__':
    main()
