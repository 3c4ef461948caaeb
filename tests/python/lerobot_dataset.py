"""LeRobot interop check for an Armstack-recorded dataset, with pandas/pyarrow as LeRobot uses them.

usage: python3 lerobot_dataset.py RECORDED_DIR REWRITTEN_DIR

1. Reads RECORDED_DIR the way LeRobot v3.0 does and checks what LeRobot relies on: the task
   strings come back as the pandas index of meta/tasks.parquet; data columns have the arrow types
   LeRobot writes; episode rows index contiguous frames; video spans are frame-exact.
2. Rewrites the dataset as LeRobot's pandas code paths do (`df.to_parquet`: vectors become plain
   list<float> columns, the tasks index is named `task`, a stray `__index_level_0__` column in the
   episodes file) into REWRITTEN_DIR, videos copied, so the Rust reader can prove it reads that
   variant too.
"""
import json
import shutil
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

src, dst = Path(sys.argv[1]), Path(sys.argv[2])
info = json.loads((src / "meta/info.json").read_text())
assert info["codebase_version"] == "v3.0", info["codebase_version"]
fps = info["fps"]

tasks = pd.read_parquet(src / "meta/tasks.parquet")
assert all(isinstance(t, str) for t in tasks.index), tasks
assert list(tasks["task_index"]) == list(range(len(tasks))), tasks
assert isinstance(tasks.iloc[0].name, str)

data = pq.read_table(src / "data/chunk-000/file-000.parquet")
types = {f.name: f.type for f in data.schema}
assert pa.types.is_fixed_size_list(types["observation.state"]), types["observation.state"]
assert types["observation.state"].value_type == pa.float32()
assert types["timestamp"] == pa.float32() and types["next.reward"] == pa.float32()
assert types["next.done"] == pa.bool_()
for k in ["frame_index", "episode_index", "index", "task_index"]:
    assert types[k] == pa.int64(), (k, types[k])
df = data.to_pandas()
assert len(df) == info["total_frames"]
assert list(df["index"]) == list(range(len(df)))

eps = pd.read_parquet(src / "meta/episodes/chunk-000/file-000.parquet")
assert list(eps["episode_index"]) == list(range(info["total_episodes"]))
assert int(eps["length"].sum()) == len(df)
for _, e in eps.iterrows():
    rows = df[(df["index"] >= e["dataset_from_index"]) & (df["index"] < e["dataset_to_index"])]
    assert (rows["episode_index"] == e["episode_index"]).all()
    assert list(rows["frame_index"]) == list(range(e["length"]))
    for key in [k for k, f in info["features"].items() if f["dtype"] == "video"]:
        span = e[f"videos/{key}/to_timestamp"] - e[f"videos/{key}/from_timestamp"]
        assert abs(span - e["length"] / fps) < 1e-9, (key, span)
    assert list(e["tasks"]) == [tasks.index[int(rows["task_index"].iloc[0])]]

# 2. The pandas rewrite.
if dst.exists():
    shutil.rmtree(dst)
shutil.copytree(src / "videos", dst / "videos")
(dst / "meta/episodes/chunk-000").mkdir(parents=True)
(dst / "data/chunk-000").mkdir(parents=True)
(dst / "meta/info.json").write_text(json.dumps(info, indent=4))
shutil.copy(src / "meta/stats.json", dst / "meta/stats.json")
pandas_df = df.copy()
for col in ["observation.state", "action", "observation.environment_state"]:
    if col in pandas_df:
        pandas_df[col] = pandas_df[col].apply(lambda v: [float(x) for x in v])
pandas_df.to_parquet(dst / "data/chunk-000/file-000.parquet")
t2 = tasks.copy()
t2.index.name = "task"
t2.to_parquet(dst / "meta/tasks.parquet")
eps.reset_index().rename(columns={"index": "__index_level_0__"}).to_parquet(
    dst / "meta/episodes/chunk-000/file-000.parquet"
)
rewritten = pq.read_table(dst / "data/chunk-000/file-000.parquet")
assert pa.types.is_list(rewritten.schema.field("observation.state").type)
print(f"ok: {info['total_episodes']} episodes, {len(df)} frames checked; rewritten to {dst}")
