"""The Parker CMA layout rule (contract-issue15 §1) and the areas read from what the kernel reports."""
import pytest

from ansible_collections.parker.kernel.plugins.module_utils._hostio import HostIO
from ansible_collections.parker.kernel.plugins.module_utils import _parker

G = 1 << 30


@pytest.mark.parametrize('value,nodes,failed,areas', [
    ('1G', [0], (), {0: G}),
    ('2G', [0], (), {0: 2 * G}),
    ('1G', [0, 1], (), {0: G}),                          # per node roundup(512M) = 1G: node 0 reaches SIZE
    ('1G', [0, 1], (0,), {1: G}),                        # node 0 fails, node 1 gets the whole 1G
    ('2G', [0, 1], (), {0: G, 1: G}),
    ('2G', [0, 1], (0,), {1: G}),                        # CmaTotal 1G, not 2G
    ('3G', [0, 1], (), {0: 2 * G, 1: 2 * G}),            # each node tried gets per (2G), not the remainder
    ('4G', [0, 1, 2, 3], (), {0: G, 1: G, 2: G, 3: G}),
    ('4G', [0, 1, 2, 3], (1,), {0: G, 2: G, 3: G}),
    ('1G', [0, 1, 2, 3], (0, 1), {2: G}),
    ('1G', [0, 1], (0, 1), {}),
    ('1:1G,0:1536M', [0, 1], (), {1: G, 0: 2 * G}),      # the order given, rounded up to 1G
    ('0:1G,1:1G', [0, 1], (0,), {1: G}),
    ('0:1G,1:2G,2:1G,3:1G', [0, 1, 2, 3], (2,), {0: G, 1: 2 * G, 3: G}),
])
def test_the_rfc_layout_rule(value, nodes, failed, areas):
    layout = _parker.expected_layout(value, nodes, failed)
    assert layout['areas'] == areas and layout['problems'] == [] and layout['warnings'] == []


def test_the_order_nodes_are_tried_in():
    assert _parker.expected_layout('1G', [0, 1], failed=(0,))['tried'] == [0, 1]
    assert _parker.expected_layout('1G', [0, 1])['tried'] == [0]
    assert _parker.expected_layout('1:1G,0:1G', [0, 1])['tried'] == [1, 0]


def test_a_share_under_1g_is_dropped_with_a_warning_and_bad_values_are_problems():
    layout = _parker.expected_layout('0:512M,1:1G', [0, 1])
    assert layout['areas'] == {1: G} and 'node 0 gets 512M, below the 1G minimum' in layout['warnings'][0]
    assert 'below the 1G minimum' in _parker.expected_layout('512M', [0, 1])['problems'][0]
    assert 'node 5 does not exist' in _parker.expected_layout('0:1G,5:1G', [0, 1])['problems'][0]
    assert 'malformed' in _parker.expected_layout('lots', [0])['problems'][0]


def boot(host, cmdline_cma='2G'):
    host.write('/proc/cmdline', 'root=/dev/vda ro parker_cma=%s' % cmdline_cma)
    return HostIO(host.root)


def test_areas_from_the_kernel_log_with_a_failed_node(host):
    io = boot(host)
    host.kmsg('Linux version 6.12.117-parker',
              'parker: reserve CMA 2048 MiB, up to 1024 MiB per node',
              'cma: Failed to reserve 1024 MiB on node 0',
              'parker: node 0 reservation failed, err -12',
              'cma: Reserved 1024 MiB at 0x0000000140000000 on node 1',
              'parker: reserved 1024 MiB on node 1')
    cma = _parker.cma_areas(io)
    assert cma['known'] and cma['sources'] == ['kmsg'] and cma['failed_nodes'] == [0]
    assert cma['areas'] == [{'node': 1, 'size': G, 'used': None, 'free': None, 'base': 0x140000000, 'source': 'kmsg'}]
    assert cma['expected'] == [{'node': 0, 'size': G}, {'node': 1, 'size': G}]
    assert any("node 0's Parker CMA reservation failed at boot" in w for w in cma['warnings'])
    assert any('the kernel reserved node 1: 1G' in w for w in cma['warnings'])


def test_a_cma_line_alone_is_not_a_parker_area(host):
    io = boot(host, '1G')
    host.kmsg('cma: Reserved 1024 MiB at 0x0000000100000000 on node 0')
    cma = _parker.cma_areas(io)
    assert not cma['known'] and cma['areas'][0]['source'] == 'expected'


def test_a_second_boot_in_the_log_replaces_the_first(host):
    io = boot(host, '1G')
    host.kmsg('parker: reserve CMA 1024 MiB, up to 1024 MiB per node', 'parker: reserved 1024 MiB on node 0',
              'parker: reserve CMA 1024 MiB, up to 1024 MiB per node', 'parker: node 0 reservation failed, err -12',
              'parker: reserved 1024 MiB on node 1')
    cma = _parker.cma_areas(io)
    assert [a['node'] for a in cma['areas']] == [1] and cma['failed_nodes'] == [0]


def test_areas_from_sysfs_with_and_without_the_page_counts(host):
    io = boot(host, '2G')
    host.cma_sysfs(1, total_pages=G // 4096, used_pages=65536)   # 6.14+: total_pages, available_pages
    host.cma_sysfs(0)                                              # older: the counters only
    cma = _parker.cma_areas(io)
    by_node = dict((a['node'], a) for a in cma['areas'])
    assert cma['known'] and cma['sources'] == ['sysfs']
    assert by_node[1]['size'] == G and by_node[1]['used'] == 256 << 20 and by_node[1]['free'] == G - (256 << 20)
    assert by_node[1]['source'] == 'sysfs'
    # The area exists (its directory does), but only parker_cma= says how big it is.
    assert by_node[0]['size'] == G and by_node[0]['source'] == 'expected'


def test_areas_from_debugfs_come_first(host):
    io = boot(host, '2G')
    host.cma_debugfs(1, base_pfn=0x140000, count=262144, used=262144)
    host.cma_sysfs(1, total_pages=1, used_pages=0)  # less authoritative: ignored where debugfs says
    host.kmsg('parker: reserve CMA 2048 MiB, up to 1024 MiB per node', 'parker: node 0 reservation failed, err -12',
              'parker: reserved 1024 MiB on node 1')
    cma = _parker.cma_areas(io)
    assert cma['sources'] == ['debugfs', 'sysfs', 'kmsg']
    assert cma['areas'] == [{'node': 1, 'size': G, 'used': G, 'free': 0, 'base': 0x140000000, 'source': 'debugfs'}]
    assert cma['failed_nodes'] == [0]


def test_when_the_kernel_says_nothing_the_layout_is_only_expected(host):
    io = boot(host, '1G')
    cma = _parker.cma_areas(io)
    assert cma['known'] is False and cma['sources'] == []
    assert cma['areas'] == [{'node': 0, 'size': G, 'used': None, 'free': None, 'base': None, 'source': 'expected'}]
    assert 'only an expectation' in cma['warnings'][0]
    host.write('/proc/cmdline', 'root=/dev/vda ro')
    assert _parker.cma_areas(io) is None


def test_areas_are_read_on_every_call(host):
    """Physical KASLR changes the layout from boot to boot: nothing is cached."""
    io = boot(host, '1G')
    host.kmsg('parker: reserve CMA 1024 MiB, up to 1024 MiB per node', 'parker: reserved 1024 MiB on node 0')
    assert [a['node'] for a in _parker.cma_areas(io)['areas']] == [0]
    host.kmsg('parker: reserve CMA 1024 MiB, up to 1024 MiB per node', 'parker: node 0 reservation failed, err -12',
              'parker: reserved 1024 MiB on node 1')
    assert [a['node'] for a in _parker.cma_areas(io)['areas']] == [1]


@pytest.mark.parametrize('lines,khz', [
    (['tsc: Detected 2994.372 MHz processor'], 2994372),
    (['tsc: Detected 2994.372 MHz processor', 'tsc: Refined TSC clocksource calibration: 2993.999 MHz'], 2993999),
    (['tsc: Detected 3000 MHz processor'], 3000000),
    (['clocksource: tsc: mask: 0xffffffffffffffff'], None),
])
def test_the_boot_kernels_measured_tsc(lines, khz):
    assert _parker.tsc_khz(lines) == khz


def test_the_filesystem_and_the_mount_are_told_apart(host):
    io = HostIO(host.root)
    host.parker_kernel(mounted=False)
    facts = _parker.parker_facts(io)
    assert facts['present'] and not facts['mounted'] and facts['filesystem_available']
    assert facts['filesystem_source'] == '/proc/filesystems'
    # An unmounted root is an empty directory: nothing in it is a partition.
    host.write('/sys/fs/parker/stray/cpus', '2')
    assert _parker.parker_facts(io)['partitions'] == []
    host.mount_parker()
    assert [p['name'] for p in _parker.parker_facts(io)['partitions']] == ['stray']
