import pytest

from ansible_collections.parker.kernel.tests.unit.unit_helpers import snapshot
from ansible_collections.parker.kernel.plugins.module_utils._memory import run_mem_reserve, block_ranges


def params(**kw):
    base = dict(mode='runtime', state='offline', blocks=None, ranges=None, size=None, node=None, name='default',
                online_type='movable', busy_timeout=1, force=False, parker_cma=None, memmap=None, crashkernel=None)
    base.update(kw)
    return base


def state(host, block):
    return host.read('/sys/devices/system/memory/memory%d/state' % block)


def test_block_ranges_merge_and_memmap_form():
    ranges = block_ranges([32, 33, 35], 128 << 20)
    assert [r['memmap'] for r in ranges] == ['256M@0x100000000', '128M@0x118000000']


def test_size_on_node_picks_movable_blocks_and_repeat_is_noop(host, run):
    result = run(run_mem_reserve, params(size='128M', node=1, name='p1'))
    assert result['changed'] and result['blocks'] == [35]
    assert state(host, 35) == 'offline'
    assert result['ranges'][0]['memmap'] == '128M@0x118000000'
    again = run(run_mem_reserve, params(size='128M', node=1, name='p1'))
    assert again['changed'] is False and again['blocks'] == [35]
    back = run(run_mem_reserve, params(state='online', size='128M', node=1, name='p1'))
    assert back['changed'] and state(host, 35) == 'online'


def test_explicit_blocks_and_ranges(host, run):
    assert run(run_mem_reserve, params(blocks='32-33'))['changed_blocks'] == [32, 33]
    result = run(run_mem_reserve, params(ranges=['0x110000000-0x117ffffff']))
    assert result['blocks'] == [34]


def test_check_mode_writes_nothing(host, run):
    before = snapshot(host.root)
    result = run(run_mem_reserve, params(size='256M', node=1, name='p1'), check_mode=True)
    assert result['changed'] and len(result['blocks']) == 2
    assert snapshot(host.root) == before


@pytest.mark.parametrize('kw,fragment', [
    (dict(size='100M'), 'not a multiple'),
    (dict(size='1G', node=1), 'needs 8'),
    (dict(blocks='90-91'), 'do not exist'),
    (dict(blocks='x-1'), 'malformed'),
    (dict(ranges=['0x100000000-0x100000fff']), 'not aligned'),
    (dict(blocks='0'), 'cannot be offlined'),
    (dict(), 'give one of'),
])
def test_refusals_write_nothing(host, run, kw, fragment):
    before = snapshot(host.root)
    result = run(run_mem_reserve, params(**kw))
    assert result['failed'] and fragment in result['msg'], result['msg']
    assert snapshot(host.root) == before


def test_busy_block_is_retried_then_rolled_back(host, run, fail_write):
    import errno
    fail_write('memory33/state', 'offline', errno.EBUSY)
    result = run(run_mem_reserve, params(blocks='32-33', busy_timeout=1))
    assert result['failed'] and result['errno_name'] == 'EBUSY'
    assert state(host, 32) == 'online'


def test_boot_mode_validates_and_reports_reboot(host, run):
    result = run(run_mem_reserve, params(mode='boot', crashkernel='128M', memmap=['64M$0x30000000']))
    assert result['changed'] is False
    assert result['tokens'] == ['memmap=64M$0x30000000', 'crashkernel=128M']
    assert result['honoured']['crashkernel=128M'] is True
    assert result['honoured']['memmap=64M$0x30000000'] is False
    assert result['reboot_required'] is True


@pytest.mark.parametrize('kw,fragment', [
    (dict(parker_cma='512M'), 'below the 1G minimum'),
    (dict(parker_cma='0:512M,1:1G'), 'node 0 gets 512M, below the 1G minimum'),
    (dict(parker_cma='0:1G,5:1G'), 'node 5 does not exist'),
    (dict(parker_cma='lots'), 'malformed'),
    (dict(memmap=['64M$0x30000001']), 'multiples of 4K'),
    (dict(memmap=['16M$0x01000000']), 'Kernel code'),
    (dict(memmap=['64M$0x38000000']), 'Crash kernel'),
    (dict(memmap=['64M$0x30000000', '32M$0x32000000']), 'overlaps memmap'),
    (dict(crashkernel='1G'), 'half or more'),
])
def test_boot_mode_refusals(host, run, kw, fragment):
    result = run(run_mem_reserve, params(mode='boot', **kw))
    assert result['failed'] and fragment in result['msg'], result['msg']


def test_boot_mode_lays_parker_cma_out_by_the_rfc_rule(host, run):
    """parker_cma=1G on two nodes is one 1G area on node 0, not two dropped 512M shares."""
    result = run(run_mem_reserve, params(mode='boot', parker_cma='1G'))
    assert not result.get('failed'), result['msg']
    assert result['cma_expected'] == [{'node': 0, 'size': 1 << 30}]


def test_boot_mode_reports_what_the_kernel_reserved(host, run):
    host.write('/proc/cmdline', 'root=/dev/vda ro parker_cma=2G')
    host.kmsg('parker: reserve CMA 2048 MiB, up to 1024 MiB per node', 'parker: node 0 reservation failed, err -12',
              'parker: reserved 1024 MiB on node 1')
    result = run(run_mem_reserve, params(mode='boot', parker_cma='2G'))
    assert result['honoured']['parker_cma=2G'] is True and result['reboot_required'] is False
    assert result['cma_areas']['failed_nodes'] == [0] and [a['node'] for a in result['cma_areas']['areas']] == [1]
    assert any("node 0's Parker CMA reservation failed" in w for w in result['warnings'])
