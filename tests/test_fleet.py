"""A fleet without a home-made balancer: HAProxy (the shipped deploy/haproxy-dte-fleet.cfg) in front of two
`dte serve` gateways, each in front of one appliance (the C protocol server with its fake engine). Requests spread
over both; one appliance is stopped mid-run, and every request still gets its own, correct answer.

The same configuration in front of two QEMU appliances with the real firmware: tests/test_serve_qemu.py.
"""

from __future__ import annotations

import pytest

from _fleet import HAProxy, run_load
from _serve import GatewayThread
from dte_build.serve import ServeConfig
from net_helpers import KEY, Server, fake_ids

def fake_text(prompt: str, seed: int, n: int) -> str:
    return "".join(chr(i) for i in fake_ids(prompt, seed, n))


def gateway(server: Server) -> GatewayThread:
    return GatewayThread(ServeConfig(appliances=[("127.0.0.1", server.port)], key=KEY, model="dte", timeout=1.5))


@pytest.mark.slow
def test_two_appliances_behind_haproxy_one_stopped_mid_run_no_request_lost() -> None:
    a, b = Server(delay_us=3_000), Server(delay_us=3_000)   # 3 ms a token: requests overlap
    try:
        with gateway(a) as ga, gateway(b) as gb, HAProxy(ga.port, gb.port) as proxy:
            proxy.wait_ready()
            with a.client() as ma, b.client() as mb:
                before = (ma.stats()["generations"], mb.stats()["generations"])
            jobs = [(f"request {i}", i) for i in range(48)]
            stopped: dict[str, int] = {}

            def stop_a() -> None:
                with a.client() as m:
                    stopped["a_generations"] = m.stats()["generations"] - before[0]
                a.stop()

            texts = run_load(proxy.url, "dte", jobs, 30, workers=6, after=16, action=stop_a)
            with b.client() as mb:
                b_generations = mb.stats()["generations"] - before[1]
    finally:
        for s in (a, b):
            if s.alive():
                s.stop()
    assert texts == [fake_text(prompt, seed, 30) for prompt, seed in jobs]   # none lost, none mixed up
    assert stopped["a_generations"] >= 4     # both served before the stop ...
    assert b_generations >= 48 - stopped["a_generations"]   # ... and B took everything A could not finish
