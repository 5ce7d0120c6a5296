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
