# -*- coding: utf-8 -*-
# Copyright (c) parker.kernel contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Kernel command-line filters: merge inventory layers, render, isolate, lint, build Application Kernel lines."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible.errors import AnsibleFilterError
from ansible_collections.parker.kernel.plugins.module_utils import _render
from ansible_collections.parker.kernel.plugins.module_utils._cmdline import merge_tokens


def _wrap(function):
    def run(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except _render.RenderError as exc:
            raise AnsibleFilterError('parker.kernel.%s: %s' % (function.__name__, exc))
    run.__name__ = function.__name__
    return run


def cmdline_merge(*layers):
    """[defaults, group, host] lists of {name, value, state} -> one list, later layers win."""
    if len(layers) == 1 and layers[0] and isinstance(layers[0][0], list):
        layers = layers[0]
    return _render.merge_layers(*layers)


def cmdline_render(args):
    """Argument entries -> {'present': [tokens], 'absent': [tokens or keys]}."""
    return _render.render(args)


def cmdline_tokens(args):
    """Argument entries -> the list of tokens that must be present."""
    return _render.render(args)['present']


def cmdline_reservations(reservations):
    return _render.reservation_args(reservations or {})


def cmdline_isolation(partition_cpus, possible, flags=('nohz_full', 'rcu_nocbs', 'isolcpus'),
                      isolcpus_flags='domain,managed_irq'):
    return _render.isolation_args(partition_cpus, possible, flags, isolcpus_flags)


def cmdline_ip(spec):
    """{address: 192.0.2.10/24, gateway, hostname, iface} -> ip=addr::gw:netmask:host:iface:off value."""
    return _render.ip_value(spec)


def cmdline_app_kernel(partition, console=None, root=None, ip=None, extra=()):
    """Partition facts {control_structure, memory: {size, start}} -> Application Kernel tokens."""
    memory = partition.get('memory') or {}
    if not memory.get('size'):
        raise _render.RenderError('partition %s has no memory yet' % partition.get('name'))
    return _render.app_kernel_tokens(partition['control_structure'], memory['size'], memory['start'],
                                     console=console, root=root, ip=cmdline_ip(ip) if ip else None, extra=extra)


def cmdline_lint(boot_tokens, app_lines, strict=False):
    findings = _render.lint(boot_tokens, app_lines)
    if strict and findings:
        raise _render.RenderError('; '.join('%(knob)s differs: %(key)s is %(boot)s on the Boot Kernel and '
                                            '%(application)s on %(partition)s' % f for f in findings))
    return findings


def cmdline_lingering(running, present, absent):
    """Running tokens a rendered line removes: exact absent tokens, or any value of a bare absent key."""
    kept = set(merge_tokens(running, remove=absent))
    return [t for t in running if t not in present and t not in kept]


def cmdline_grub(tokens):
    """Tokens as they must be written inside GRUB_CMDLINE_LINUX="..." ('$' escaped)."""
    return [_render.grub_escape(token) for token in tokens]


class FilterModule(object):

    def filters(self):
        return dict((f.__name__, _wrap(f)) for f in (
            cmdline_merge, cmdline_render, cmdline_tokens, cmdline_reservations, cmdline_isolation,
            cmdline_ip, cmdline_app_kernel, cmdline_lint, cmdline_lingering, cmdline_grub))
