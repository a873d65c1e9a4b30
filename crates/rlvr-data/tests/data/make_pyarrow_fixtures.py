"""Writes the pyarrow-made Parquet fixtures read by tests/parquet.rs (pyarrow 26.0.1).

Run from this folder: python make_pyarrow_fixtures.py
"""
import decimal

import pyarrow as pa
import pyarrow.parquet as pq

# verl's schema, as its preprocessing scripts write it (datasets/pandas -> pyarrow).
rows = [
    {"data_source": "openai/gsm8k",
     "prompt": [{"role": "user", "content": "What is 6*7? Let's think"}],
     "ability": "math",
     "reward_model": {"style": "rule", "ground_truth": "42"},
     "extra_info": {"split": "train", "index": 0, "answer": "6*7=42 #### 42", "question": "What is 6*7?"}},
    {"data_source": "openai/gsm8k",
     "prompt": [{"role": "system", "content": "sys"}, {"role": "user", "content": "2+2?"}],
     "ability": "math",
     "reward_model": {"style": "rule", "ground_truth": "4"},
     "extra_info": {"split": "train", "index": 1, "answer": None, "question": "2+2?"}},
]
t = pa.Table.from_pylist(rows)
pq.write_table(t, "verl-snappy.parquet", compression="snappy")
pq.write_table(t, "verl-zstd.parquet", compression="zstd")

# A plain question/answer file with the other column types the loader converts.
t2 = pa.table({
    "question": pa.array(["q1", "q2"], pa.large_string()),
    "answer": pa.array([1, 2], pa.int32()),
    "meta": pa.array([[("a", 1)], [("b", 2)]], pa.map_(pa.string(), pa.int64())),
    "ts": pa.array([0, 1000], pa.timestamp("ms")),
    "blob": pa.array([b"\xff\x00", b"ok"], pa.binary()),
    "dec": pa.array([decimal.Decimal("1.25"), decimal.Decimal("-2.50")], pa.decimal128(10, 2)),
    "f16": pa.array([1.5, None], pa.float16()),
    "tags": pa.array([["x", "y"], []], pa.list_(pa.string())),
    "d": pa.array([1, 2], pa.date32()),
})
pq.write_table(t2, "plain-snappy.parquet")
