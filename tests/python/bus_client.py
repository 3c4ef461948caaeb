"""Opening a zenoh session on the Armstack bus from Python (eclipse-zenoh only, no Armstack code).

Endpoints come from the locator files in $ARMSTACK_BUS_DIR; the robot name from $ARMSTACK_ROBOT.
"""
import glob, json, os, sys

import zenoh

ROBOT = os.environ["ARMSTACK_ROBOT"]
BUS_DIR = os.environ["ARMSTACK_BUS_DIR"]
PREFIX = f"armstack/{ROBOT}/"


def open_session():
    """A peer session connected to every locator in $ARMSTACK_BUS_DIR, scouting off."""
    endpoints = [l.strip() for p in glob.glob(os.path.join(BUS_DIR, "*.locator")) for l in open(p) if l.strip()]
    if not endpoints:
        sys.exit(f"no locator files in {BUS_DIR}")
    conf = zenoh.Config()
    conf.insert_json5("mode", '"peer"')
    conf.insert_json5("connect/endpoints", json.dumps(endpoints))
    conf.insert_json5("scouting/multicast/enabled", "false")
    conf.insert_json5("scouting/gossip/enabled", "false")
    return zenoh.open(conf)
