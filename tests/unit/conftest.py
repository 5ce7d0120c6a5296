import pytest

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
def run(host, sim, monkeypatch):
    """run(operation, params) runs the module whose main() calls ``operation``, through its argument spec."""
    from ansible_collections.parker.kernel.tests.unit.parker_kernel import run_module
    from ansible_collections.parker.kernel.plugins.modules import boot_cmdline, cpu_offline, device_detach, \
        kexec_load, mem_reserve
    modules = dict((m.__name__.rsplit('.', 1)[-1], m)
                   for m in (boot_cmdline, cpu_offline, device_detach, kexec_load, mem_reserve))

    def _run(operation, params, check_mode=False, commands=None):
        module = modules[operation.__name__[len('run_'):]]
        return run_module(monkeypatch, module, params, host.root, check_mode=check_mode, diff=True,
                          commands=commands)
    return _run
