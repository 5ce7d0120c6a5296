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
from ansible_collections.parker.kernel.plugins.module_utils import _facts, _memory, _staged_boot

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
    missing = [t for t in present if t not in running]
    lingering = [t for t in running if t in drop or (token_key(t) in drop and t not in present)]
    stage = params.get('stage') or 'none'
    if stage != 'none' and kind != 'grub':
        raise Refused('stage=%s needs GRUB and its grubenv; on a grubby (BLS) host use stage=none with a cold or '
                      'kexec reboot' % stage)
    if kind == 'grub':
        staged = _staged_state(io)
        if stage in ('next_boot', 'entry'):
            result = _stage_grub(params, io, txn, present, drop, staged, bool(missing or lingering))
        elif stage == 'discard':
            result = _remove_staged(io, txn, staged, run_update=True)
        else:
            # Persisting the default line is the promotion: the staged entry goes in the same update-grub.
            removed = _remove_staged(io, txn, staged, run_update=False)
            result = _persist_grub(params, io, txn, present, drop, force_update=removed['changed'])
            result['changed'] = result['changed'] or removed['changed']
        result['staged_found'] = staged['found']
    else:
        result = _persist_grubby(io, txn, present, drop)
    # In check mode nothing reached the bootloader unless it was already there; a staged line is not the default.
    persisted = stage == 'none' and not (txn.check_mode and result['changed'])
    result.update(bootloader=kind, tokens=present, removed=drop, running_missing=missing, persisted=persisted,
                  running_unwanted=lingering, reboot_required=bool(missing or lingering), check_mode=txn.check_mode)
    if reserved is not None:
        result['warnings'] = reserved.pop('warnings')
        reserved.pop('changed')
        result['reservations'] = reserved
    return result


def _update_grub(io, cfg_path):
    update = next((p for p in ('/usr/sbin/update-grub', '/sbin/update-grub') if io.exists(p)), None)
    if update is None:
        raise Refused('update-grub is not installed; cannot regenerate %s' % cfg_path)
    return update


def _staged_state(io):
    """grub.cfg, grubenv and a staged entry left by an earlier run, as the host has them now."""
    cfg_path = next((p for p in GRUB_CFG if io.exists(p)), GRUB_CFG[0])
    grubenv = next((p for p in _staged_boot.GRUBENV if io.exists(p)), _staged_boot.GRUBENV[0])
    env = _staged_boot.parse_grubenv(io.read(grubenv, '') or '')
    script = io.read(_staged_boot.SCRIPT)
    script = None if script is None else script + '\n'
    found = _staged_boot.script_tokens(script)
    return {'cfg_path': cfg_path, 'cfg': io.read(cfg_path, '') or '', 'grubenv': grubenv, 'env': env,
            'script': script,
            'found': None if found is None and env.get('next_entry') != _staged_boot.ENTRY_ID else {
                'kernel': found[0] if found else None, 'tokens': found[1] if found else [],
                'next_boot': env.get('next_entry') == _staged_boot.ENTRY_ID}}


def _editenv(io):
    editenv = next((p for p in _staged_boot.EDITENV if io.exists(p)), None)
    if editenv is None:
        raise Refused('grub-editenv is not installed; it sets and clears the one-shot next_entry')
    return editenv


def _remove_staged(io, txn, staged, run_update):
    """Remove a staged entry and its one-shot; the caller runs update-grub unless ``run_update``."""
    changed = False
    if staged['env'].get('next_entry') == _staged_boot.ENTRY_ID:
        editenv = _editenv(io)
        txn.run([editenv, staged['grubenv'], 'unset', 'next_entry'],
                undo=[editenv, staged['grubenv'], 'set', 'next_entry=' + _staged_boot.ENTRY_ID])
        changed = True
    # grub.cfg may still hold the entry when a run was cut off after removing the script.
    if staged['script'] is not None or _staged_boot.ENTRY_ID in staged['cfg']:
        update = _update_grub(io, staged['cfg_path'])
        if staged['script'] is not None:
            txn.on_rollback([update])
            txn.remove_file(_staged_boot.SCRIPT, staged['script'])
        if run_update:
            txn.run([update])
            txn.run(['sync'])
        changed = True
    return {'changed': changed, 'staged': None,
            'diff': diff_of(_staged_boot.SCRIPT, staged['script'] or '', '')}


def _stage_grub(params, io, txn, present, drop, staged, needed):
    """Write the staged entry (and, for next_boot, GRUB's one-shot for it); the default stays as it is."""
    try:
        title, block = _staged_boot.default_entry(staged['cfg'], staged['env'])
        kernel, default_tokens = _staged_boot.entry_tokens(block)
    except _staged_boot.StageError as exc:
        raise Refused('cannot stage: %s' % exc)
    if params['stage'] == 'next_boot':
        why = _staged_boot.grubenv_writable(io.read('/proc/self/mountinfo', '') or '', staged['grubenv'])
        if why:
            raise Refused('cannot stage a one-shot boot: %s; use cmdline_reboot_strategy kexec (one-shot by '
                          'nature) or move /boot/grub to a plain ext4 or FAT partition' % why)
    try:
        extra = render(_as_args(params.get('staged_only') or [], 'present'))['present']
    except RenderError as exc:
        raise Refused('refused before touching any file: staged_only: %s' % exc)
    current = io.read(params['dropin'])
    owned = _staged_boot.owned_tokens(current)
    tokens = _staged_boot.staged_tokens(default_tokens, owned, present, drop, extra)
    try:
        check_tokens(tokens, os.uname()[4], 'staged line', trusted=default_tokens)
    except RenderError as exc:
        raise Refused('refused before touching any file: %s' % exc)
    initrd = next((w[1] for w in (split_cmdline(line.strip()) for line in block)
                   if len(w) > 1 and w[0] in ('initrd', 'initrdefi')), None)
    # Nothing left to promote: the default entry already boots the line and the drop-in keeps it there.
    default_current = current is not None and current + '\n' == grub_dropin(present, drop) and \
        all(t in default_tokens for t in present) and \
        not any(t in drop or (token_key(t) in drop and t not in present) for t in default_tokens)
    entry = {'entry_id': _staged_boot.ENTRY_ID, 'kernel': kernel, 'initrd': initrd, 'tokens': tokens,
             'next_boot': params['stage'] == 'next_boot', 'default_title': title, 'default_tokens': default_tokens}
    if not needed:
        # The running kernel already has the line (a staged boot whose run was cut off): nothing to stage.
        result = _remove_staged(io, txn, staged, run_update=True)
        result.update(default_entry={'title': title, 'tokens': default_tokens}, default_current=default_current)
        return result
    script = _staged_boot.staged_script(block, tokens)
    in_cfg = [b for t, b in _staged_boot.top_level_entries(staged['cfg']) if _staged_boot.ENTRY_ID in b[0]]
    # A run cut off between writing the script and update-grub left grub.cfg without the entry: regenerate.
    cfg_stale = not in_cfg or _staged_boot.entry_tokens(in_cfg[0])[1] != tokens
    if staged['script'] != script or cfg_stale:
        update = _update_grub(io, staged['cfg_path'])
        txn.on_rollback([update])
        txn.write_file(_staged_boot.SCRIPT, script, undo_text=staged['script'], mode=0o755)
        txn.run([update])
        txn.run(['sync'])
        if not txn.check_mode:
            after = io.read(staged['cfg_path'], '') or ''
            entries = dict((t, b) for t, b in _staged_boot.top_level_entries(after))
            mine = [b for b in entries.values() if _staged_boot.ENTRY_ID in b[0]]
            if not mine or _staged_boot.entry_tokens(mine[0])[1] != tokens:
                raise ApplyError('update-grub', None, 'grub.cfg lacks the staged entry after update-grub')
            if title not in entries or _staged_boot.entry_tokens(entries[title])[1] != default_tokens:
                raise ApplyError('update-grub', None, 'the default entry changed while staging')
    editenv = _editenv(io)
    pending = staged['env'].get('next_entry') == _staged_boot.ENTRY_ID
    if params['stage'] == 'next_boot' and not pending:
        txn.run([editenv, staged['grubenv'], 'set', 'next_entry=' + _staged_boot.ENTRY_ID],
                undo=[editenv, staged['grubenv'], 'unset', 'next_entry'])
        txn.run(['sync'])
    elif params['stage'] == 'entry' and pending:
        txn.run([editenv, staged['grubenv'], 'unset', 'next_entry'])
    return {'changed': staged['script'] != script or cfg_stale or (params['stage'] == 'next_boot') != pending,
            'staged': entry, 'default_entry': {'title': title, 'tokens': default_tokens},
            'default_current': default_current,
            'diff': diff_of(_staged_boot.SCRIPT, staged['script'] or '', script)}


def _persist_grub(params, io, txn, present, drop, force_update=False):
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
    stale = stale or force_update
    update = _update_grub(io, cfg_path) if changed_file or stale else None
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
