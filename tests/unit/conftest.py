import pytest

from ansible_collections.parker.kernel.tests.unit.unit_helpers import FakeModule, ModuleExit
from ansible_collections.parker.kernel.tests.unit.fakehost import FakeHost  # noqa: F401


@pytest.fixture
def host(tmp_path):
    return FakeHost(tmp_path / 'root').build()


@pytest.fixture
def sim(host, monkeypatch):
    from ansible_collections.parker.kernel.tests.unit.fakehost import KernelSim
    return KernelSim(host).install(monkeypatch)


@pytest.fixture
def fail_write(sim, monkeypatch):
    """fail_write(suffix, value, errno) makes writes of ``value`` to paths ending in ``suffix`` fail."""
    from ansible_collections.parker.kernel.plugins.module_utils import _hostio
    import os
    inner = _hostio.Transaction._write_now
    rules = []

    def write(txn, rel, value):
        for suffix, wanted, code in rules:
            if rel.endswith(suffix) and (wanted is None or str(value) == wanted):
                raise _hostio.ApplyError('write %s to %s' % (value, rel), code, os.strerror(code))
        return inner(txn, rel, value)
    monkeypatch.setattr(_hostio.Transaction, '_write_now', write)
    return lambda suffix, value, code: rules.append((suffix, value, code))


@pytest.fixture
def run(host, sim):
    from ansible_collections.parker.kernel.plugins.module_utils._common import execute

    def _run(operation, params, check_mode=False, commands=None):
        module = FakeModule(params, check_mode=check_mode, commands=commands)
        with pytest.raises(ModuleExit) as exc:
            execute(module, operation, root=host.root)
        exc.value.result['_ran'] = module.ran
        return exc.value.result
    return _run
