"""The cmdline and partition filter plugins (controller side); the rendering rules are in test_render.py."""
import os

import pytest
import yaml

from ansible.errors import AnsibleFilterError
from ansible_collections.parker.kernel.plugins.module_utils import _render
from ansible_collections.parker.kernel.plugins.filter import cmdline as filters
from ansible_collections.parker.kernel.plugins.filter import partition as partition_filters

FILTER_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))), 'plugins', 'filter')


def test_app_kernel_line():
    partition = {'name': 'p1', 'control_structure': '0x1417d9000', 'memory': {'size': 1 << 30, 'start': 0x100000000}}
    tokens = filters.cmdline_app_kernel(partition, console='ttyS1,115200', root='/dev/nvme0n1p1',
                                        ip={'address': '192.0.2.10/24', 'gateway': '192.0.2.1',
                                            'hostname': 'p1', 'iface': 'eth0'},
                                        extra=[{'name': 'nohz', 'value': 'on'}])
    assert tokens == ['parker=0x1417d9000', 'memmap=exactmap', 'memmap=1G@0x100000000', 'console=ttyS1,115200',
                      'root=/dev/nvme0n1p1', 'ip=192.0.2.10::192.0.2.1:255.255.255.0:p1:eth0:off', 'nohz=on']


def test_lint_strict_fails_naming_both_values():
    boot = ['mitigations=auto', 'intel_iommu=on', 'quiet']
    with pytest.raises(_render.RenderError) as exc:
        filters.cmdline_lint(boot, {'p1': ['mitigations=off']}, strict=True)
    assert 'mitigations is auto on the Boot Kernel and off on p1' in str(exc.value)


def test_lingering_matches_bare_keys_and_exact_tokens():
    running = ['ro', 'nohz_full=2-3', 'quiet', 'crashkernel=256M']
    assert filters.cmdline_lingering(running, ['crashkernel=256M'], ['nohz_full', 'quiet', 'crashkernel']) == \
        ['nohz_full=2-3', 'quiet']


def test_filter_errors_name_the_filter():
    render = filters.FilterModule().filters()['cmdline_render']
    with pytest.raises(AnsibleFilterError, match='parker.kernel.cmdline_render: quiet: value True'):
        render([{'name': 'quiet', 'value': True}])


@pytest.mark.parametrize('name', sorted(list(filters.FilterModule().filters())
                                        + list(partition_filters.FilterModule().filters())))
def test_every_filter_has_documentation(name):
    """ansible-doc -t filter parker.kernel.NAME reads plugins/filter/NAME.yml."""
    path = os.path.join(FILTER_DIR, name + '.yml')
    assert os.path.exists(path), 'plugins/filter/%s.yml (DOCUMENTATION, EXAMPLES, RETURN) is missing' % name
    with open(path) as handle:
        doc = yaml.safe_load(handle)
    assert doc['DOCUMENTATION']['name'] == name
    assert doc['EXAMPLES'].strip() and doc['RETURN']['_value']
