"""A Python client of the multi-host profile (docs/wire-schema.md, "Finding the endpoint"): logs in
to the robot host as $ARMSTACK_ZENOH_USER with $ARMSTACK_ZENOH_PASSWORD at $ARMSTACK_ENDPOINT,
waits for a joint state, then engages the e-stop for 1.5 s. Whether the e-stop counts is the robot
host's decision (access control); the caller checks the node. Exit code 0 when a joint state
arrived; prints what failed otherwise.
"""
import json, os, sys, time

import cbor2, zenoh

PREFIX = f"armstack/{os.environ['ARMSTACK_ROBOT']}/"

conf = zenoh.Config()
conf.insert_json5("mode", '"client"')
conf.insert_json5("connect/endpoints", json.dumps([os.environ["ARMSTACK_ENDPOINT"]]))
conf.insert_json5("transport/auth/usrpwd/user", json.dumps(os.environ["ARMSTACK_ZENOH_USER"]))
conf.insert_json5("transport/auth/usrpwd/password", json.dumps(os.environ["ARMSTACK_ZENOH_PASSWORD"]))

with zenoh.open(conf) as session:
    states = session.declare_subscriber(PREFIX + "joint_state")
    deadline = time.time() + 10
    while states.try_recv() is None:
        if time.time() > deadline:
            sys.exit("no joint state within 10 s")
        time.sleep(0.02)
    deadline, seq = time.time() + 1.5, 0
    while time.time() < deadline:
        msg = {"header": {"schema": 1, "stamp_ns": time.time_ns(), "seq": seq, "source_id": 5151},
               "engaged": True, "reason": "python " + os.environ["ARMSTACK_ZENOH_USER"]}
        session.put(PREFIX + "estop", cbor2.dumps(msg))
        seq += 1
        time.sleep(0.05)
print("ok: joint state received, e-stop sent")
