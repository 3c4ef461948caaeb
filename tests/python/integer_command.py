"""A Python client commands the arm with whole numbers written as Python writes them: `cbor2`
encodes `1` as a CBOR integer, not a float. The node must obey the command, not drop it as a
decode error. Exit code 0 on success; prints what failed otherwise.
"""
import sys, time

import cbor2

from bus_client import PREFIX, open_session

TARGET = [1, 0, 0, 0, 1, 0]  # rad, Python ints on purpose
GRIPPER = 1  # open, an int too

with open_session() as session:
    states = session.declare_subscriber(PREFIX + "joint_state")
    status = session.declare_subscriber(PREFIX + "status")
    deadline = time.time() + 20
    seq, reached, counters, q = 0, False, {}, None
    while time.time() < deadline and not reached:
        cmd = {"header": {"schema": 1, "stamp_ns": time.time_ns(), "seq": seq, "source_id": 4343},
               "position": TARGET, "gripper": GRIPPER}
        session.put(PREFIX + "command/joint", cbor2.dumps(cmd))
        seq += 1
        time.sleep(0.05)
        while (sample := states.try_recv()) is not None:
            q = cbor2.loads(sample.payload.to_bytes())["position"]
            reached = all(abs(a - b) < 0.02 for a, b in zip(q, TARGET))
        while (sample := status.try_recv()) is not None:
            counters = cbor2.loads(sample.payload.to_bytes())["counters"]
    if not reached:
        sys.exit(f"the arm never reached {TARGET} (last position {q}); status counters {counters}")
print(f"ok: integer command obeyed; decode_errors {counters.get('decode_errors', 0)}")
