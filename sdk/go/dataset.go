package lumen

import (
	"encoding/json"
	"fmt"
	"io"
)

// Dataset is a dataset that runs on the host — a JSON pipeline over the node's data root
// (docs/data.md) or an object holding an Arrow IPC stream — read one record batch at a time
// through the data capability (lumen.Require(abi.CapData)). The host runs the plan ahead of the
// guest by a few batches at most.
//
// A dataset lives until Close or the end of the call that opened it; a handle is of no use to
// any other call.
type Dataset struct{ h int64 }

// OpenDataset opens a JSON pipeline without a sink, for example
//
//	[{"read_csv": "sales"}, {"filter": "amount > 0"}, {"select": ["region", "amount"]}]
//
// Paths are relative to the node's data root and may not leave it. A malformed pipeline, a
// path outside the root or a missing folder is an error naming it.
func OpenDataset(pipeline string) (*Dataset, error) {
	return datasetOf(hostDatasetOpen([]byte(pipeline)))
}

// OpenDatasetRef opens the object r as a dataset: its bytes must be an Arrow IPC stream, as
// DatasetBuilder.Finish stores one.
func OpenDatasetRef(r Ref) (*Dataset, error) {
	spec, _ := json.Marshal(map[string]int64{"object": r.h})
	return datasetOf(hostDatasetOpen(spec))
}

func datasetOf(r int64) (*Dataset, error) {
	if r < 0 {
		return nil, hostError(r)
	}
	return &Dataset{h: r}, nil
}

// Handle is the dataset's host handle.
func (d *Dataset) Handle() int64 { return d.h }

// NextIPC returns the next record batch as an Arrow IPC stream (a schema, one batch, the end
// marker), or nil and io.EOF once the dataset is exhausted. A failure of the plan (a malformed
// row, a schema that changes between files) is an *Error with Status abi.ErrFailed, and every
// later call returns it again.
func (d *Dataset) NextIPC() ([]byte, error) {
	r := hostDatasetNext(d.h)
	switch {
	case r < 0:
		return nil, hostError(r)
	case r == 0:
		return nil, io.EOF
	}
	return takeResult(r), nil
}

// Next returns the next record batch, decoded by ParseBatch, or nil and io.EOF at the end.
func (d *Dataset) Next() (*Batch, error) {
	b, err := d.NextIPC()
	if err != nil {
		return nil, err
	}
	return ParseBatch(b)
}

// SchemaIPC returns the dataset's schema as an Arrow IPC stream with no batch. For a pipeline
// the host learns it from the first batch, which it then keeps for Next.
func (d *Dataset) SchemaIPC() ([]byte, error) {
	r := hostDatasetSchema(d.h)
	if r < 0 {
		return nil, hostError(r)
	}
	return takeResult(r), nil
}

// Schema returns the dataset's columns, decoded by ParseSchema.
func (d *Dataset) Schema() ([]Field, error) {
	b, err := d.SchemaIPC()
	if err != nil {
		return nil, err
	}
	return ParseSchema(b)
}

// Close stops the dataset on the host and frees what it holds.
func (d *Dataset) Close() error {
	if r := hostDatasetClose(d.h); r < 0 {
		return hostError(int64(r))
	}
	return nil
}

// DatasetBuilder collects record batches on the host, which Finish stores as one object.
type DatasetBuilder struct {
	h int64
	n int
}

// CreateDataset starts a dataset to append batches to. schemaIPC is an Arrow IPC stream with
// the schema every batch must have, or nil to take the first batch's.
func CreateDataset(schemaIPC []byte) (*DatasetBuilder, error) {
	r := hostDatasetCreate(schemaIPC)
	if r < 0 {
		return nil, hostError(r)
	}
	return &DatasetBuilder{h: r}, nil
}

// AppendIPC adds one batch, an Arrow IPC stream of one record batch. The host decodes and checks
// it: a malformed batch, or one whose columns differ from the first batch's, is an error naming
// the batch (counted from 0, refused ones included) and the column, and leaves the dataset as
// it was.
func (b *DatasetBuilder) AppendIPC(batch []byte) error {
	b.n++
	if r := hostDatasetAppend(b.h, batch); r < 0 {
		return hostError(int64(r))
	}
	return nil
}

// Append adds the batch that bb builds.
func (b *DatasetBuilder) Append(bb *BatchBuilder) error {
	ipc, err := bb.IPC()
	if err != nil {
		return fmt.Errorf("lumen: batch %d: %w", b.n, err)
	}
	return b.AppendIPC(ipc)
}

// Finish stores every appended batch as one Arrow IPC stream in a new object of the call and
// returns its ref, which another task can open with OpenDatasetRef. The builder is closed,
// whatever the outcome.
func (b *DatasetBuilder) Finish() (Ref, error) {
	r := hostDatasetFinish(b.h)
	if r < 0 {
		return Ref{}, hostError(r)
	}
	return Ref{h: r}, nil
}

// Close drops the builder and what it holds without storing anything.
func (b *DatasetBuilder) Close() error {
	if r := hostDatasetClose(b.h); r < 0 {
		return hostError(int64(r))
	}
	return nil
}

// WriteResult says what Write wrote: rows, and the files as the guest names them.
type WriteResult struct {
	Rows  int64    `json:"rows"`
	Files []string `json:"files"`
}

// Write writes what remains of the dataset — which it then exhausts — as files into a folder of
// a writable directory the job grants, named by sink: {"write_parquet": "/out/sales"} (or
// write_csv, write_jsonl). The module needs the fs capability as well as data. The files are
// part-NNNNN files, each complete or absent.
func (d *Dataset) Write(sink string) (*WriteResult, error) { return datasetWrite(d.h, sink) }

// Write writes the batches appended so far as files, as Dataset.Write does. The builder stays
// open: Finish or Close it after.
func (b *DatasetBuilder) Write(sink string) (*WriteResult, error) { return datasetWrite(b.h, sink) }

func datasetWrite(h int64, sink string) (*WriteResult, error) {
	r := hostDatasetWrite(h, []byte(sink))
	if r < 0 {
		return nil, hostError(r)
	}
	var res WriteResult
	if err := json.Unmarshal(takeResult(r), &res); err != nil {
		return nil, fmt.Errorf("lumen: dataset_write result: %w", err)
	}
	return &res, nil
}
