"""FixedBatches: the same rows give the same file bytes however they were cut on arrival."""

import pyarrow as pa

from spanbank.export.batches import FixedBatches


def _stream_bytes(parts: list[pa.Table], rows: int) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, parts[0].schema) as writer:
        batches = FixedBatches(writer.write_table, rows)
        for p in parts:
            batches.put(p)
        batches.close()
    return sink.getvalue().to_pybytes()


def test_the_stream_does_not_depend_on_how_rows_arrive():
    """Cut into 7 / 100 / 1 row tables (a batch beginning inside an arrived table was a slice
    whose offsets the stream wrote: different bytes, hunt E finding 5)."""
    table = pa.table(
        {
            "text": [f"text {i} " * (i % 5) for i in range(250)],
            "tokens": [[f"t{j}" for j in range(i % 4)] for i in range(250)],
            "n": list(range(250)),
        }
    )
    cuts = [
        [table.slice(i, 7) for i in range(0, 250, 7)],
        [table.slice(i, 100) for i in range(0, 250, 100)],
        [table.slice(i, 1) for i in range(250)],
    ]
    streams = {_stream_bytes(parts, 60) for parts in cuts}
    assert len(streams) == 1
    back = pa.ipc.open_stream(streams.pop()).read_all()
    assert back.equals(table)
    assert [b.num_rows for b in back.to_batches()] == [60, 60, 60, 60, 10]
