"""A Python client of the Armstack bus (eclipse-zenoh + cbor2 only, no Armstack code).

Connects through the locator files in $ARMSTACK_BUS_DIR, decodes every topic the sim node
publishes, checks each message's schema and fields, then publishes an e-stop and waits until the
node reports `Estopped`. Exit code 0 on success; prints what failed otherwise.
"""
import sys, time

import cbor2

from bus_client import PREFIX, open_session

REQUIRED = {
    "joint_state": ["header", "name", "position", "velocity", "effort", "ee_pose"],
    "camera/front": ["header", "camera", "width", "height", "encoding", "data", "intrinsics", "extrinsics"],
    "camera/front_depth": ["header", "camera", "width", "height", "encoding", "data"],
    "camera/wrist": ["header", "camera", "width", "height", "encoding", "data"],
    "episode": ["header", "episode_index", "seed", "kind", "step", "reward", "done", "success", "scene"],
    "status": ["header", "node", "state", "message", "counters"],
    "task": ["header", "instruction", "scene"],
}

seen = {}
with open_session() as session:
    prefix = PREFIX
    sub = session.declare_subscriber(prefix + "**")
    deadline = time.time() + 20
    estop_sent = False
    estopped = False
    while time.time() < deadline and not (estopped and all(t in seen for t in REQUIRED)):
        sample = sub.try_recv()
        if sample is None:
            time.sleep(0.005)
            if all(t in seen for t in REQUIRED) and not estop_sent:
                msg = {"header": {"schema": 1, "stamp_ns": time.time_ns(), "seq": 0, "source_id": 4242},
                       "engaged": True, "reason": "python client"}
                session.put(prefix + "estop", cbor2.dumps(msg))
                estop_sent = True
            continue
        topic = str(sample.key_expr)[len(prefix):]
        msg = cbor2.loads(sample.payload.to_bytes())
        assert msg["header"]["schema"] == 1, msg["header"]
        if topic in REQUIRED:
            missing = [k for k in REQUIRED[topic] if k not in msg]
            assert not missing, f"{topic}: missing {missing}"
            seen[topic] = msg
        if topic.startswith("camera/"):
            bpp = {"Rgb8": 3, "Mono8": 1, "Depth32F": 4}[msg["encoding"]]
            assert isinstance(msg["data"], bytes), type(msg["data"])
            assert len(msg["data"]) == msg["width"] * msg["height"] * bpp, topic
        if topic == "status" and msg["state"] == "Estopped":
            estopped = True
        if estop_sent and not estopped:
            # Keep the e-stop asserted until the node reports it (zenoh routes asynchronously).
            m = {"header": {"schema": 1, "stamp_ns": time.time_ns(), "seq": 1, "source_id": 4242},
                 "engaged": True, "reason": "python client"}
            session.put(prefix + "estop", cbor2.dumps(m))

missing = [t for t in REQUIRED if t not in seen]
if missing:
    sys.exit(f"never received: {missing}")
if not estopped:
    sys.exit("the node never reported Estopped after the Python e-stop")
js = seen["joint_state"]
print(f"ok: {len(seen)} topics decoded; joints {js['name']}; e-stop obeyed")
