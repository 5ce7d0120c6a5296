# -*- coding: utf-8 -*-
# Copyright (c) parker.kernel contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# This module util is PRIVATE to the parker.kernel collection.
# It can have breaking changes at any time.

"""Kernel command-line tokens and memparse sizes.

Comparisons are always by token, never by substring (ansible-conventions.md §2.5).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import re

_SIZE = re.compile(r'^(?P<num>0[xX][0-9a-fA-F]+|\d+)(?P<suffix>[KMGTPEkmgtpe]?)$')
_SUFFIX = {'': 0, 'K': 10, 'M': 20, 'G': 30, 'T': 40, 'P': 50, 'E': 60}

# Tokens the bootloader adds on its own; they are not part of what a user asks for.
BOOTLOADER_TOKENS = ('BOOT_IMAGE',)


class SizeError(ValueError):
    pass


def memparse(text):
    """Parse a size the way the kernel's memparse() does: 64M, 0x1000, 1G."""
    match = _SIZE.match(str(text).strip())
    if not match:
        raise SizeError('malformed size %r: expected a number with an optional K/M/G/T/P/E suffix' % (text,))
    return int(match.group('num'), 0) << _SUFFIX[match.group('suffix').upper()]


def format_size(value):
    """Render bytes with the largest exact binary suffix: 1073741824 -> 1G."""
    for suffix in ('E', 'P', 'T', 'G', 'M', 'K'):
        shift = _SUFFIX[suffix]
        if value and value % (1 << shift) == 0:
            return '%d%s' % (value >> shift, suffix)
    return '%d' % value


def format_memmap(size, start):
    """SIZE@BASE as memmap= takes it: 128M@0x110000000."""
    return '%s@0x%x' % (format_size(int(size)), int(start))


def split_cmdline(text):
    """Split /proc/cmdline into tokens, keeping double-quoted values whole."""
    tokens, current, quoted = [], [], False
    for char in text.strip():
        if char == '"':
            quoted = not quoted
            current.append(char)
        elif char.isspace() and not quoted:
            if current:
                tokens.append(''.join(current))
                current = []
        else:
            current.append(char)
    if current:
        tokens.append(''.join(current))
    return tokens


def token_key(token):
    return token.split('=', 1)[0]


def merge_tokens(base, add=(), remove=()):
    """Remove tokens by exact match or by key, then append new ones without duplicates.

    ``remove`` entries with ``=`` match that exact token; bare names remove every
    token with that key. Added keys replace earlier tokens of the same key, except
    repeatable keys such as memmap= where only exact duplicates are dropped.
    """
    repeatable = ('memmap', 'console', 'ip')
    drop_exact = set(r for r in remove if '=' in r)
    drop_keys = set(r for r in remove if '=' not in r)
    result = [t for t in base if t not in drop_exact and token_key(t) not in drop_keys]
    for token in add:
        key = token_key(token)
        if key not in repeatable and '=' in token:
            result = [t for t in result if token_key(t) != key]
        if token not in result:
            result.append(token)
    return result
