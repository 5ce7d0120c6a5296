# -*- coding: utf-8 -*-
# Copyright (c) parker.kernel contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# This module util is PRIVATE to the parker.kernel collection.
# It can have breaking changes at any time.

"""Persist a kernel command line to the bootloader, for parker.kernel.boot_cmdline.

Debian GRUB: one drop-in under /etc/default/grub.d/ that filters out the keys it
owns from GRUB_CMDLINE_LINUX(_DEFAULT) and appends its tokens, then update-grub.
RHEL family: grubby --update-kernel=ALL. Nothing else is touched.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import re

from ansible_collections.parker.kernel.plugins.module_utils._cmdline import split_cmdline, token_key
from ansible_collections.parker.kernel.plugins.module_utils._common import Refused, diff_of
from ansible_collections.parker.kernel.plugins.module_utils._hostio import ApplyError
from ansible_collections.parker.kernel.plugins.module_utils._render import render, grub_escape, check_tokens, RenderError, \
    REPEATABLE
from ansible_collections.parker.kernel.plugins.module_utils import _facts, _memory

GRUB_CFG = ('/boot/grub/grub.cfg', '/boot/grub2/grub.cfg')
HEADER = '# Managed by parker.kernel.boot_cmdline: edit the inventory, not this file.\n'


def _as_args(tokens, state):
    args = []
    for token in tokens:
        name, sep, value = token.partition('=')
        arg = {'name': name, 'state': state}
        if sep:
            arg['value'] = value
        args.append(arg)
    return args


def plan_tokens(params):
    """Validated tokens to have, and patterns (exact tokens or bare keys) to drop from the base line."""
    try:
        rendered = render(_as_args(params['present'] or [], 'present') + _as_args(params['absent'] or [], 'absent'))
    except RenderError as exc:
        raise Refused('refused before touching any file: %s' % exc)
    present = rendered['present']
    # Keys we set replace whatever the distribution's line has for them; repeatable ones are kept exact.
    drop = [token_key(t) for t in present if token_key(t) not in REPEATABLE]
    drop += [t for t in present if token_key(t) in REPEATABLE]
    drop += rendered['absent']
    unique = []
    for item in drop:
        if item not in unique:
            unique.append(item)
    return present, unique


def grub_dropin(present, drop):
    """The drop-in's exact text (byte-stable for the same input)."""
    # Values sourced from /etc/default/grub still carry GRUB's \$ escape, so exact patterns are escaped alike.
    patterns = set()
    for item in drop:
        patterns.update(['%s=*' % item, item] if '=' not in item else [grub_escape(item)])
    cases = '|'.join(sorted(patterns))
    lines = [HEADER,
             '# Owned tokens: %s\n' % ' '.join(present),
             'set -f\n']
    for var in ('GRUB_CMDLINE_LINUX', 'GRUB_CMDLINE_LINUX_DEFAULT'):
        if cases:
            lines.append('parker_kernel_kept=\n'
                         'for parker_kernel_token in ${%s}; do\n'
                         '  case "$parker_kernel_token" in\n'
                         '    %s) ;;\n'
                         '    *) parker_kernel_kept="$parker_kernel_kept $parker_kernel_token" ;;\n'
                         '  esac\n'
                         'done\n'
                         '%s="${parker_kernel_kept# }"\n' % (var, cases, var))
    lines.append('GRUB_CMDLINE_LINUX="${GRUB_CMDLINE_LINUX} %s"\n' % ' '.join(grub_escape(t) for t in present))
    lines.append('set +f\nunset parker_kernel_kept parker_kernel_token\n')
    return ''.join(lines)


def grub_cfg_default_entry(text):
    """Kernel, initrd and tokens of the first entry in grub.cfg (the default on Debian), unescaped."""
    entry = None
    for line in text.splitlines():
        words = split_cmdline(line.strip())
        if len(words) > 1 and words[0] == 'linux' and entry is None:
            entry = {'kernel': words[1], 'initrd': None, 'tokens': [t.replace('\\$', '$') for t in words[2:]]}
        elif len(words) > 1 and words[0] == 'initrd' and entry is not None and entry['initrd'] is None:
            entry['initrd'] = words[1]
            break
    return entry


def grub_cfg_default_tokens(text):
    entry = grub_cfg_default_entry(text)
    return entry['tokens'] if entry else None


def run_boot_cmdline(params, io, txn):
    reserved = None
    wanted = dict((k, v) for k, v in (params.get('reservations') or {}).items()
                  if k in ('parker_cma', 'memmap', 'crashkernel') and v not in (None, '', []))
    if wanted:
        # Checked against the host before any file is touched: a reservation the kernel would drop or that
        # overlaps the running kernel must not reach the next boot.
        reserved = _memory.boot_plan(wanted, _memory.boot_facts(io))
    present, drop = plan_tokens(params)
    kind = params['bootloader']
    if kind == 'auto':
        detected = _facts.bootloader(io)['type']
        kind = {'grub': 'grub', 'grub-bls': 'grubby'}.get(detected)
        if kind is None:
            raise Refused('no supported bootloader found (detected %s); set bootloader: grub or grubby' % detected)
    running = _facts.running_cmdline(io)
    # The next line is roughly the running one with our changes; it must still fit COMMAND_LINE_SIZE.
    expected = [t for t in running if t not in drop and token_key(t) not in drop] + present
    try:
        check_tokens(expected, os.uname()[4], 'next boot line (the running line with these changes)',
                     trusted=running)
    except RenderError as exc:
        raise Refused('refused before touching any file: %s' % exc)
    if kind == 'grub':
        result = _persist_grub(params, io, txn, present, drop)
    else:
        result = _persist_grubby(io, txn, present, drop)
    missing = [t for t in present if t not in running]
    lingering = [t for t in running if t in drop or (token_key(t) in drop and t not in present)]
    # In check mode nothing reached the bootloader unless it was already there.
    persisted = not (txn.check_mode and result['changed'])
    result.update(bootloader=kind, tokens=present, removed=drop, running_missing=missing, persisted=persisted,
                  running_unwanted=lingering, reboot_required=bool(missing or lingering))
    if reserved is not None:
        result['warnings'] = reserved.pop('warnings')
        reserved.pop('changed')
        result['reservations'] = reserved
    return result


def _persist_grub(params, io, txn, present, drop):
    path = params['dropin']
    if not re.match(r'^/etc/default/grub\.d/[A-Za-z0-9_.-]+\.cfg$', path):
        raise Refused('dropin must be a .cfg file directly under /etc/default/grub.d/, not %s' % path)
    wanted = grub_dropin(present, drop)
    current = io.read(path)
    current_text = None if current is None else current + '\n'
    cfg_path = next((p for p in GRUB_CFG if io.exists(p)), GRUB_CFG[0])
    cfg_tokens = grub_cfg_default_tokens(io.read(cfg_path, '') or '')
    stale = cfg_tokens is None or any(t not in cfg_tokens for t in present) or \
        any(t in drop or (token_key(t) in drop and t not in present) for t in cfg_tokens)
    changed_file = current_text != wanted
    update = next((p for p in ('/usr/sbin/update-grub', '/sbin/update-grub') if io.exists(p)), None)
    if (changed_file or stale) and update is None:
        raise Refused('update-grub is not installed; cannot regenerate %s' % cfg_path)
    if changed_file:
        # Undo runs last-in first-out: restore the drop-in first, then regenerate grub.cfg from it.
        txn.on_rollback([update])
        txn.write_file(path, wanted, undo_text=current_text)
    if changed_file or stale:
        txn.run([update])
        # update-grub renames grub.cfg into place; sync so a reset now boots the new file, not an empty one.
        txn.run(['sync'])
        if not txn.check_mode:
            after = grub_cfg_default_tokens(io.read(cfg_path, '') or '') or []
            missing = [t for t in present if t not in after]
            if missing:
                raise ApplyError('update-grub', None, 'the default entry of %s lacks %s after update-grub; '
                                 'another grub.d file may override GRUB_CMDLINE_LINUX' % (cfg_path, ' '.join(missing)))
    entry = grub_cfg_default_entry(io.read(cfg_path, '') or '') if not txn.check_mode else None
    return {'changed': changed_file or stale, 'dropin': path, 'grub_cfg': cfg_path, 'next_boot': entry,
            'diff': diff_of(path, current_text or '', wanted)}


def _grubby_entries(txn):
    rc, out, err = txn.probe(['grubby', '--info=ALL'])
    if rc != 0:
        raise Refused('grubby --info=ALL failed: %s' % (err or out).strip())
    entries = []
    for line in out.splitlines():
        if line.startswith('kernel='):
            entries.append({'kernel': line.split('=', 1)[1].strip('"'), 'args': []})
        elif line.startswith('args=') and entries:
            entries[-1]['args'] = split_cmdline(line.split('=', 1)[1].strip('"'))
    return entries


def _persist_grubby(io, txn, present, drop):
    entries = _grubby_entries(txn)
    if not entries:
        raise Refused('grubby lists no boot entries')
    # Every entry must carry the tokens, not just the default one (lfops lesson).
    add = [t for t in present if any(t not in e['args'] for e in entries)]
    remove = [d for d in drop if any(a == d or (token_key(a) == d and a not in present)
                                     for e in entries for a in e['args'])]
    before = '\n'.join('%s: %s' % (e['kernel'], ' '.join(e['args'])) for e in entries)
    if remove:
        txn.run(['grubby', '--update-kernel=ALL', '--remove-args=%s' % ' '.join(remove)])
    if add:
        txn.run(['grubby', '--update-kernel=ALL', '--args=%s' % ' '.join(add)])
    return {'changed': bool(add or remove), 'diff': diff_of('grubby --info=ALL', before,
                                                            before + ('\n+ %s' % ' '.join(add) if add else '')
                                                            + ('\n- %s' % ' '.join(remove) if remove else ''))}
