"""Serve a demo Blink cloud: ``python -m archiver.simulator --port 8080 --clips 5`` (Ctrl-C to stop)."""

from __future__ import annotations

import argparse
import threading

from .knobs import Faults, SimConfig
from .server import Simulator


def build_demo(sim: Simulator, clips: int, local_clips: int) -> None:
    """One network with two cameras, a USB-enabled sync module, ``clips`` cloud clips per camera."""
    net = sim.add_network("Home", time_zone="America/Chicago")
    front = sim.add_camera(net, "Front Door", type="catalina")
    back = sim.add_camera(net, "Back Yard", type="xt2")
    sm = sim.add_sync_module(net, "SM2", local_storage=True, online=True)
    for cam in (front, back):
        sim.add_clips(cam, clips)
    for i in range(local_clips):
        sim.add_local_clip(sm, front if i % 2 == 0 else back)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m archiver.simulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--clips", type=int, default=5, help="cloud clips per camera")
    parser.add_argument("--local-clips", type=int, default=3, help="clips on the sync module's USB drive")
    parser.add_argument("--no-2fa", action="store_true", help="sign in without a PIN")
    parser.add_argument("--error-rate", type=float, default=0.0)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--token-ttl", type=int, default=14400, help="access token lifetime, seconds")
    parser.add_argument(
        "--edge-block",
        default="",
        help="OAuth steps Cloudflare answers with a 406 page, comma-separated: "
        "authorize,signin,verify,token,refresh",
    )
    args = parser.parse_args(argv)

    config = SimConfig(
        host=args.host,
        port=args.port,
        two_factor=not args.no_2fa,
        token_ttl_s=args.token_ttl,
        edge_block={step.strip() for step in args.edge_block.split(",") if step.strip()},
    )
    sim = Simulator(config, Faults(error_rate=args.error_rate, latency_s=args.latency))
    build_demo(sim, args.clips, args.local_clips)
    sim.start()
    print(f"Blink simulator listening on {sim.url}")
    print(f"  username: {config.username}")
    print(f"  password: {config.password}")
    if config.two_factor:
        print(f"  2FA PIN:  {config.pin or 'a fresh one per sign-in (see sent_pins)'}")
    print(f"  tier: {config.tier}  account_id: {config.account_id}")
    print(
        "Point every Blink host (OAuth, rest-prod, rest-{tier}) at the URL above. Ctrl-C to stop.", flush=True
    )
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
