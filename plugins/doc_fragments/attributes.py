# -*- coding: utf-8 -*-
# Copyright (c) parker.kernel contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class ModuleDocFragment(object):

    DOCUMENTATION = r'''
options: {}
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
  platform:
    description: Target OS/families that can be operated against.
    support: N/A
    platforms: posix
'''

    FACTS = r'''
options: {}
attributes:
  facts:
    description: Action returns an C(ansible_facts) dictionary that will update existing host facts.
'''

    # Options every state-changing module shares.
    SAFETY = r'''
options:
  force:
    description:
      - Override the lock-out guards (housekeeping minimum, SMT split, devices that carry SSH,
        the default route or the root filesystem, devices the Boot Kernel uses as the facts' C(in_use) lists
        them, Parker-claimed resources).
      - Syntax and existence checks always apply.
    type: bool
    default: false
  parker_root:
    description:
      - Where the Parker kernfs is mounted. Resources claimed by a partition listed there are never
        touched from the host.
    type: path
    default: /sys/fs/parker
'''

    # Options parker.kernel.partition and parker.kernel.host_partitions share (_partition.PARTITION_ARGUMENT_SPEC).
    PARTITION = r'''
options:
  console:
    description: The Application Kernel's C(console=) value (with M(parker.kernel.host_partitions), for partitions that
      give none).
    type: str
  root:
    description: The Application Kernel's C(root=) value (with M(parker.kernel.host_partitions), for partitions that
      give none).
    type: str
  cmdline:
    description:
      - Further Application Kernel tokens (tuning). C(parker=) and C(memmap=) are set by the partition.
      - A C(nokaslr), C(kaslr) or C(tsc_early_khz=) given here replaces the one O(nokaslr) and O(tsc_early_khz) add.
    type: list
    elements: str
    default: []
  nokaslr:
    description: Put C(nokaslr) on the Application Kernel's line (its image is placed inside the partition's memory).
    type: bool
    default: true
  tsc_early_khz:
    description:
      - The Application Kernel's C(tsc_early_khz=), which spares it its own TSC calibration (a real start hung there
        under QEMU TCG).
      - "V(auto) passes the Boot Kernel's measured frequency, from its log (C(tsc: Refined TSC clocksource
        calibration: X MHz), else C(tsc: Detected X MHz processor)), and warns when the log has neither.
        V(off) passes none; a number passes that many kHz."
    type: str
    default: auto
  mount_kernfs:
    description:
      - Mount the Parker kernfs at O(parker_root) when the kernel has it and nothing is mounted there.
      - V(false) refuses instead, writing nothing.
    type: bool
    default: true
  poweroff_timeout:
    description:
      - With O(state=absent), seconds to wait for a running Application Kernel, told to power off from inside, to
        clear C(online) before anything is removed. The module reads the partition's C(online) file itself.
      - V(0) refuses a running partition at once.
    type: int
    default: 0
  start_timeout:
    description: Seconds to wait for an Application Kernel to report itself online.
    type: int
    default: 300
  replace:
    description:
      - Remove and recreate a partition that is not running and whose resources differ from the request, or whose
        Application Kernel has stopped (a Parker partition is single-use).
    type: bool
    default: false
  memory_retries:
    description: How many times to retry an C(ENOMEM) from C(memory) after freeing caches and compacting.
    type: int
    default: 3
  min_housekeeping_cores:
    description: Whole cores that must stay online in the Boot Kernel once the partitions hold their CPUs.
    type: int
    default: 1
  allow_smt_split:
    description: Allow an SMT core whose threads end up with different owners (the Boot Kernel, partitions).
    type: bool
    default: false
'''
