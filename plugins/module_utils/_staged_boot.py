# -*- coding: utf-8 -*-
# Copyright (c) parker.kernel contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# This module util is PRIVATE to the parker.kernel collection.
# It can have breaking changes at any time.

"""A one-shot staged GRUB entry, for boot_cmdline's O(stage): the new line boots once, the default stays.

The staged entry is a copy of the entry GRUB boots by default with the new line (plus O(staged_only), for
example C(panic=30)), emitted by one /etc/grub.d script so update-grub keeps it. GRUB's own one-shot,
C(next_entry) in grubenv, picks it for the next boot only: GRUB clears it before it boots the entry, so a
staged line that panics reboots into the old default by itself. Promotion is an ordinary persist of the
default line, which also removes the staged entry. Everything here but ``apply`` is pure.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import re

from ansible_collections.parker.kernel.plugins.module_utils._cmdline import split_cmdline, token_key
from ansible_collections.parker.kernel.plugins.module_utils._ownership import unescape_mount_field

ENTRY_ID = 'parker-kernel-staged'
SCRIPT = '/etc/grub.d/42_parker_kernel_staged'   # after 10_linux and 40/41_custom: indices of other entries stay
GRUBENV = ('/boot/grub/grubenv', '/boot/grub2/grubenv')
EDITENV = ('/usr/bin/grub-editenv', '/bin/grub-editenv', '/usr/bin/grub2-editenv')
SCRIPT_HEADER = '# Managed by parker.kernel.boot_cmdline: a staged boot entry for the next boot only.\n'
# Filesystems GRUB can rewrite grubenv on (it writes the file's blocks in place); not through LVM, MD or dm.
GRUBENV_FILESYSTEMS = ('ext2', 'ext3', 'ext4', 'vfat', 'xfs')


class StageError(Exception):
    """The host cannot stage safely; the message says why and what to do instead."""


def top_level_entries(cfg_text):
    """[(title, [lines of the block])] of the menuentries outside any submenu, in grub.cfg order."""
    entries, depth, current = [], 0, None
    for line in cfg_text.splitlines():
        stripped = line.strip()
        if current is not None:
            current[1].append(line)
            depth += stripped.count('{') - stripped.count('}')
            if depth == 0:
                entries.append(current)
                current = None
            continue
        words = stripped.split()
        title = re.match(r'''^menuentry\s+(?:'([^']*)'|"([^"]*)"|(\S+))''', stripped)
        if title and depth == 0 and stripped.endswith('{'):
            current = (next(t for t in title.groups() if t is not None), [line])
            depth = 1
        elif words and words[0] == 'submenu':
            depth += stripped.count('{') - stripped.count('}')
        elif depth > 0:
            depth += stripped.count('{') - stripped.count('}')
    return entries


def default_entry(cfg_text, grubenv_vars):
    """The block GRUB boots when no next_entry is set: only the forms this code can be sure of."""
    entries = [e for e in top_level_entries(cfg_text) if ENTRY_ID not in e[1][0]]
    if 'next_entry' not in cfg_text or 'save_env next_entry' not in cfg_text:
        raise StageError('grub.cfg has no next_entry one-shot (its 00_header is not GRUB 2\'s own); '
                         'use cmdline_reboot_strategy kexec or cold')
    match = re.search(r'^\s*set default="([^"]*)"\s*$', cfg_text.split('save_env next_entry', 1)[1], re.M)
    chosen = match.group(1) if match else '0'
    if chosen == '${saved_entry}':
        chosen = grubenv_vars.get('saved_entry') or '0'
    if chosen.isdigit():
        index = int(chosen)
        if index < len(entries):
            return entries[index]
    for title, block in entries:
        if chosen in (title,) or ("'%s'" % chosen) in block[0]:
            return title, block
    raise StageError('cannot tell which top-level entry GRUB boots by default (default "%s"); staging needs '
                     'GRUB_DEFAULT set to an entry index, title or id outside a submenu' % chosen)


def _linux_line(block):
    for i, line in enumerate(block):
        words = split_cmdline(line.strip())
        if len(words) > 1 and words[0] in ('linux', 'linuxefi'):
            return i, words
    raise StageError('the default entry has no linux line')


def entry_tokens(block):
    """Kernel and tokens of an entry's linux line, with GRUB's \\$ escape undone."""
    _i, words = _linux_line(block)
    return words[1], [t.replace('\\$', '$') for t in words[2:]]


def staged_tokens(default_tokens, owned_before, present, drop, staged_only):
    """The line the default entry gets once the new drop-in is persisted, plus the staged-only tokens.

    The default entry's tokens lose what the current drop-in appended (owned_before) and what the new one
    drops, then gain the new tokens, as the drop-in does to GRUB_CMDLINE_LINUX.
    """
    kept = [t for t in default_tokens
            if t not in owned_before and t not in drop and not (token_key(t) in drop and t not in present)]
    tokens = [t for t in kept if t not in present] + list(present)
    extra_keys = set(token_key(t) for t in staged_only)
    return [t for t in tokens if token_key(t) not in extra_keys] + list(staged_only)


def staged_script(block, tokens):
    """The /etc/grub.d script that emits the staged entry (byte-stable for the same input)."""
    index, words = _linux_line(block)
    body = list(block)
    indent = block[index][:len(block[index]) - len(block[index].lstrip())]
    body[index] = '%s%s\t%s %s' % (indent, words[0], words[1], ' '.join(t.replace('$', '\\$') for t in tokens))
    body[0] = "menuentry 'parker.kernel staged boot (next boot only)' --class os $menuentry_id_option '%s' {" \
        % ENTRY_ID
    return ('#!/bin/sh\n' + SCRIPT_HEADER +
            '# Removed when the line is promoted (boot_cmdline stage=none) or discarded (stage=discard).\n'
            "cat <<'PARKER_KERNEL_STAGED'\n" + '\n'.join(body) + '\nPARKER_KERNEL_STAGED\n')


def script_tokens(text):
    """(kernel, tokens) of a staged script, or None when there is none."""
    if not text or SCRIPT_HEADER not in text:
        return None
    try:
        return entry_tokens(text.splitlines())
    except StageError:
        return None


def parse_grubenv(text):
    values = {}
    for line in (text or '').splitlines():
        if line and not line.startswith('#') and '=' in line:
            key, _sep, value = line.partition('=')
            values[key] = value
    return values


def owned_tokens(dropin_text):
    """The tokens the current drop-in appends ('# Owned tokens:' line), or []."""
    for line in (dropin_text or '').splitlines():
        if line.startswith('# Owned tokens:'):
            return line.split(':', 1)[1].split()
    return []


def grubenv_writable(mountinfo_text, path):
    """None when GRUB can clear next_entry in ``path`` at boot; else why not (a one-shot that is never
    cleared would boot the staged line forever)."""
    best = None
    for line in (mountinfo_text or '').splitlines():
        fields = line.split()
        if len(fields) < 7 or '-' not in fields:
            continue
        point = unescape_mount_field(fields[4])
        tail = fields[fields.index('-') + 1:]
        if (path == point or path.startswith(point.rstrip('/') + '/')) and (best is None or len(point) > len(best[0])):
            best = (point, tail[0], tail[1] if len(tail) > 1 else '')
    if best is None:
        return 'cannot find the filesystem that holds %s' % path
    point, fstype, source = best
    if fstype not in GRUBENV_FILESYSTEMS:
        return '%s is on %s (%s), where GRUB cannot clear its one-shot next_entry' % (path, fstype, point)
    if re.match(r'^/dev/(mapper/|dm-|md)', source):
        return '%s is on %s through LVM, MD or device-mapper, where GRUB cannot write grubenv' % (path, source)
    return None
