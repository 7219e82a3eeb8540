// Package data is Lumen's Data library: lazy, streaming datasets of Arrow record batches read
// from CSV, JSON lines, Parquet or Go values, transformed by pipelined operators and written back
// out, all under a memory cap.
//
// A Dataset is a plan, not data: building one does no I/O. A sink (Collect, Take, Count,
// WriteParquet, WriteCSV, WriteJSONL) runs the plan as a chain of goroutine stages joined by
// bounded channels, so a slow consumer holds back its producers (backpressure) and a streaming
// stage holds at most a few batches. The blocking operators (Sort, GroupBy, RandomShuffle,
// Repartition and the build side of Join) keep at most Options.MemoryCap bytes each and spill the
// rest to Arrow IPC files under Options.TempDir, so a job over more data than its cap stays under
// the cap.
//
// The engine plugs in at three seams: a BatchFunc or PoolFunc (a WASM export that takes and
// returns Arrow IPC bytes, adapted with EncodeIPC and DecodeIPC), a Resolver that names those
// functions for JSON pipelines (ParsePipeline), and Progress, a per-operator snapshot for the CLI.
//
// Datasets are immutable and safe for concurrent use; each sink call runs its own execution.
// Records handed to the caller (Collect, a BatchFunc's return value) are the receiver's to
// Release. See docs/data.md.
package data
