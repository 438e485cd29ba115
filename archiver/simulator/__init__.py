"""A stateful fake Blink cloud served over real HTTP on loopback (demo mode, tests, benchmarks).

from archiver.simulator import Simulator, SimConfig, Faults

with Simulator(SimConfig(two_factor=False)) as sim:
    net = sim.add_network("Home")
    cam = sim.add_camera(net, "Front Door")
    sim.add_clips(cam, 3)
    ...  # point every Blink host (OAuth, rest-prod, rest-{tier}) at sim.url

``sim.faults`` injects transport faults; ``sim.quirks`` (``MediaQuirks``) turns on the media, listing
and USB behaviours of the real service and of hostile servers (CDN redirects, 403 clips, skewed Date…).
"""

from .knobs import Faults, SimConfig
from .quirks import MediaQuirks
from .server import RequestRecord, Simulator

__all__ = ["Faults", "MediaQuirks", "RequestRecord", "SimConfig", "Simulator"]
