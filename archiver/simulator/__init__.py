"""A stateful fake Blink cloud served over real HTTP on loopback (demo mode, tests, benchmarks).

from archiver.simulator import Simulator, SimConfig, Faults

with Simulator(SimConfig(two_factor=False)) as sim:
    net = sim.add_network("Home")
    cam = sim.add_camera(net, "Front Door")
    sim.add_clips(cam, 3)
    ...  # point every Blink host (OAuth, rest-prod, rest-{tier}) at sim.url
"""

from .server import RequestRecord, Simulator
from .state import Faults, SimConfig

__all__ = ["Faults", "RequestRecord", "SimConfig", "Simulator"]
