"""Models spread over devices and processes give the numbers of one device.

Each case runs in a fresh interpreter: fake CPU devices must be configured before JAX starts.
(jax 0.10 on CPU can hang on back-to-back sharded collectives; model-axis sharding has none,
and every subprocess has a timeout.)
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

from conftest import REPO, tiny_scale

TRAIN = textwrap.dedent("""
    import json, sys
    import jax, numpy as np
    sys.path.insert(0, {tests!r})
    from conftest import tiny_scale
    from nested_ae_jax.config import parse_config
    from nested_ae_jax.sweep import sweep
    table = tiny_scale(data={csv!r}, epochs=6, cv={{"kind": "kfold", "n_splits": 5}})
    table["training"]["chunk_epochs"] = 3  # two chunks, one compiled program
    cfg = parse_config({{"scales": {{"s": table}}}})
    devices = None if {all_devices} else jax.devices()[:1]
    res = sweep(cfg, {{"encoder.l1": [0.0, 0.01]}}, seeds=2, devices=devices)
    print(json.dumps({{"devices": jax.device_count(), "runs": res.runs.to_dict("list")}}))
""")


@pytest.fixture(scope="module")
def csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("par") / "s.csv"
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(45, 3)), columns=["a", "b", "c"])
    frame["y"] = frame.a * frame.b + frame.c
    frame.to_csv(path, index=False)
    return str(path)


def run_python(code: str, devices: int, timeout=300, extra_env=None):
    env = {**os.environ, "JAX_NUM_CPU_DEVICES": str(devices), "JAX_PLATFORMS": "cpu",
           **(extra_env or {})}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_a_sweep_sharded_over_4_devices_equals_one_device(csv):
    tests = str(REPO / "tests")
    one = run_python(TRAIN.format(tests=tests, csv=csv, all_devices=False), devices=4)
    four = run_python(TRAIN.format(tests=tests, csv=csv, all_devices=True), devices=4)
    assert four["devices"] == 4
    # 4 combinations x 5 folds = 20 models: 5 per device
    for key, values in one["runs"].items():
        np.testing.assert_allclose(four["runs"][key], values, rtol=1e-5, atol=1e-6,
                                   err_msg=key)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_with_a_global_mesh_equal_one_process(csv, tmp_path):
    cfg = tmp_path / "c.toml"
    from nested_ae_jax import io
    table = tiny_scale(data=csv, epochs=6, cv={"kind": "kfold", "n_splits": 5})
    table["training"]["chunk_epochs"] = 3  # two chunks, one compiled program
    cfg.write_text(io.dumps_toml({"scales": {"s": table}}))
    port = free_port()
    env = {**os.environ, "JAX_NUM_CPU_DEVICES": "2", "JAX_PLATFORMS": "cpu"}
    base = [sys.executable, "-m", "nested_ae_jax.cli", "sweep", str(cfg), "--seeds", "3",
            "--grid", "encoder.l1=0,0.01", "--quiet"]
    procs = [subprocess.Popen(base + ["--out", str(tmp_path / f"p{i}"), "--coordinator",
                                      f"127.0.0.1:{port}", "--num-processes", "2",
                                      "--process-id", str(i)],
                              env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for i in range(2)]
    try:
        outs = [p.communicate(timeout=300) for p in procs]
    finally:
        for p in procs:
            p.kill()
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    assert "on 4 device(s)" in outs[0][0]  # the global mesh spans both processes
    single = subprocess.run(base + ["--out", str(tmp_path / "single")], env={
        **env, "JAX_NUM_CPU_DEVICES": "1"}, cwd=REPO, capture_output=True, text=True,
        timeout=300)
    assert single.returncode == 0, single.stderr[-3000:]
    multi = pd.read_csv(tmp_path / "p0" / "sweep_runs.csv")
    alone = pd.read_csv(tmp_path / "single" / "sweep_runs.csv")
    assert len(multi) == 6
    pd.testing.assert_frame_equal(multi, alone, rtol=1e-5, atol=1e-6)
