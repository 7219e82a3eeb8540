// Command datasetguest reads and builds datasets through the dataset_* host functions, with the
// Go SDK's own IPC reader and writer (no Arrow linked), for the engine's dataset tests.
package main

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/lumenflow/lumen/sdk/abi"
	lumen "github.com/lumenflow/lumen/sdk/go"
)

// SumIn names a pipeline and the integer column to sum.
type SumIn struct {
	Pipeline string `json:"pipeline"`
	Column   string `json:"column"`
}

// SumOut is what sum found and the object of derived rows it built.
type SumOut struct {
	Sum     int64          `json:"sum"`
	Nulls   int64          `json:"nulls"`
	Rows    int64          `json:"rows"`
	Batches int64          `json:"batches"`
	Schema  []lumen.Field  `json:"schema"`
	Object  lumen.Ref      `json:"object"`
	Derived ReadbackResult `json:"derived"`
}

// ReadbackResult sums the derived rows of an object sum built.
type ReadbackResult struct {
	Rows   int64   `json:"rows"`
	Twice  float64 `json:"twice"`
	Big    int64   `json:"big"`
	Nulls  int64   `json:"nulls"`
	Tagged int64   `json:"tagged"` // rows whose tag ends in their id
}

// sum opens in.Pipeline, sums column in.Column batch by batch and, for each batch, appends a
// batch of derived rows (id, twice = 2·value or null, big = value >= 50, tag = city#id) to a new
// dataset that it finishes into an object; then it opens that object and reads the derived rows
// back.
func sum(in SumIn) (SumOut, error) {
	var out SumOut
	d, err := lumen.OpenDataset(in.Pipeline)
	if err != nil {
		return out, err
	}
	defer d.Close()
	if out.Schema, err = d.Schema(); err != nil {
		return out, err
	}
	b, err := lumen.CreateDataset(nil)
	if err != nil {
		return out, err
	}
	for {
		batch, err := d.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return out, err
		}
		out.Batches++
		out.Rows += int64(batch.Rows)
		c := batch.Column(in.Column)
		ids, cities := batch.Column("id"), batch.Column("city")
		if c < 0 || ids < 0 || cities < 0 {
			return out, fmt.Errorf("batch %d has no column %q, id or city: %v", out.Batches, in.Column, batch.Fields)
		}
		vals, err := batch.Int64s(c)
		if err != nil {
			return out, err
		}
		idv, err := batch.Int64s(ids)
		if err != nil {
			return out, err
		}
		cv, err := batch.Strings(cities)
		if err != nil {
			return out, err
		}
		twice := make([]float64, batch.Rows)
		big := make([]bool, batch.Rows)
		valid := make([]bool, batch.Rows)
		tags := make([]string, batch.Rows)
		for r, v := range vals {
			tags[r] = fmt.Sprintf("%s#%d", cv[r], idv[r])
			if !batch.Valid(c, r) {
				out.Nulls++
				continue
			}
			out.Sum += v
			twice[r], big[r], valid[r] = 2*float64(v), v >= 50, true
		}
		bb := lumen.NewBatchBuilder().Int64("id", idv, nil).Float64("twice", twice, valid).Bool("big", big, nil).String("tag", tags, nil)
		if err := b.Append(bb); err != nil {
			return out, err
		}
	}
	if out.Object, err = b.Finish(); err != nil {
		return out, err
	}
	out.Derived, err = readback(ReadbackIn{Ref: out.Object})
	return out, err
}

// ReadbackIn names an object of derived rows.
type ReadbackIn struct {
	Ref lumen.Ref `json:"ref"`
}

func readback(in ReadbackIn) (ReadbackResult, error) {
	var out ReadbackResult
	d, err := lumen.OpenDatasetRef(in.Ref)
	if err != nil {
		return out, err
	}
	defer d.Close()
	if fields, err := d.Schema(); err != nil || len(fields) != 4 || fields[3].Type != lumen.TypeString {
		return out, fmt.Errorf("schema of the derived rows: %v %v", fields, err)
	}
	for {
		batch, err := d.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		tw, err := batch.Float64s(batch.Column("twice"))
		if err != nil {
			return out, err
		}
		big, err := batch.Bools(batch.Column("big"))
		if err != nil {
			return out, err
		}
		ids, err := batch.Int64s(batch.Column("id"))
		if err != nil {
			return out, err
		}
		tags, err := batch.Strings(batch.Column("tag"))
		if err != nil {
			return out, err
		}
		for r := range batch.Rows {
			out.Rows++
			out.Twice += tw[r]
			if !batch.Valid(batch.Column("twice"), r) {
				out.Nulls++
			}
			if big[r] {
				out.Big++
			}
			if strings.HasSuffix(tags[r], fmt.Sprintf("#%d", ids[r])) {
				out.Tagged++
			}
		}
	}
}

// appendBad builds a dataset from the batches its input names, in order: "good" (id int64),
// "float" (id float64), "truncated" (a good batch cut short) or "garbage", and reports each
// append's error ("" for none) and then Finish's.
func appendBad(cases []string) ([]string, error) {
	b, err := lumen.CreateDataset(nil)
	if err != nil {
		return nil, err
	}
	good, err := lumen.NewBatchBuilder().Int64("id", []int64{1, 2, 3}, nil).IPC()
	if err != nil {
		return nil, err
	}
	var out []string
	note := func(err error) {
		if err != nil {
			out = append(out, err.Error())
		} else {
			out = append(out, "")
		}
	}
	for _, c := range cases {
		switch c {
		case "good":
			note(b.AppendIPC(good))
		case "float":
			note(b.Append(lumen.NewBatchBuilder().Float64("id", []float64{1.5}, nil)))
		case "truncated":
			note(b.AppendIPC(good[:len(good)-20]))
		case "garbage":
			note(b.AppendIPC([]byte("this is not arrow at all, not even close")))
		default:
			return nil, fmt.Errorf("unknown case %q", c)
		}
	}
	_, err = b.Finish()
	note(err)
	return out, nil
}

// leave opens a pipeline, reads one batch and returns without closing it: the host closes it.
func leave(pipeline string) (int, error) {
	d, err := lumen.OpenDataset(pipeline)
	if err != nil {
		return 0, err
	}
	b, err := d.Next()
	if err != nil {
		return 0, err
	}
	return b.Rows, nil
}

// scan opens a pipeline and sums an integer column, nothing more: the read path alone.
func scan(in SumIn) (int64, error) {
	d, err := lumen.OpenDataset(in.Pipeline)
	if err != nil {
		return 0, err
	}
	defer d.Close()
	var total int64
	for {
		batch, err := d.Next()
		if errors.Is(err, io.EOF) {
			return total, nil
		}
		if err != nil {
			return 0, err
		}
		vals, err := batch.Int64s(batch.Column(in.Column))
		if err != nil {
			return 0, err
		}
		for _, v := range vals {
			total += v
		}
	}
}

// WriteIn names a pipeline to open, or rows to build, and the sink to write them to.
type WriteIn struct {
	Pipeline string  `json:"pipeline"`
	Build    []int64 `json:"build"`
	Sink     string  `json:"sink"`
}

// write writes an opened pipeline, or a built batch of the values in Build, with dataset_write.
func write(in WriteIn) (*lumen.WriteResult, error) {
	if in.Pipeline != "" {
		d, err := lumen.OpenDataset(in.Pipeline)
		if err != nil {
			return nil, err
		}
		defer d.Close()
		return d.Write(in.Sink)
	}
	b, err := lumen.CreateDataset(nil)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	if err := b.Append(lumen.NewBatchBuilder().Int64("v", in.Build, nil)); err != nil {
		return nil, err
	}
	return b.Write(in.Sink)
}

var sink int64

// spin opens a pipeline, reads one batch, then loops until the deadline stops it.
func spin(pipeline string) (int, error) {
	d, err := lumen.OpenDataset(pipeline)
	if err != nil {
		return 0, err
	}
	if _, err := d.Next(); err != nil {
		return 0, err
	}
	for {
		sink++
	}
}

func init() {
	lumen.Require(abi.CapData, abi.CapObjects, abi.CapFS)
	lumen.Task("sum", sum)
	lumen.Task("readback", readback)
	lumen.Task("append_bad", appendBad)
	lumen.Task("leave", leave)
	lumen.Task("spin", spin)
	lumen.Task("scan", scan)
	lumen.Task("write", write)
	lumen.BytesTask("partition", partition)
	lumen.Task("total", total)
}

// partition reads the pipeline its input names and returns it as one Arrow IPC stream: a data
// job's partition, kept as the task's result (so it can be rebuilt from lineage).
func partition(in []byte) ([]byte, error) {
	d, err := lumen.OpenDataset(string(in))
	if err != nil {
		return nil, err
	}
	defer d.Close()
	b, err := lumen.CreateDataset(nil)
	if err != nil {
		return nil, err
	}
	for {
		batch, err := d.NextIPC()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if err := b.AppendIPC(batch); err != nil {
			return nil, err
		}
	}
	ref, err := b.Finish()
	if err != nil {
		return nil, err
	}
	return ref.GetBytes()
}

// TotalIn names partitions (objects holding Arrow IPC streams) and the integer column to sum.
type TotalIn struct {
	Parts  []lumen.Ref `json:"parts"`
	Column string      `json:"column"`
}

// total sums a column over every partition, opening each object as a dataset.
func total(in TotalIn) (int64, error) {
	var sum int64
	for i, p := range in.Parts {
		d, err := lumen.OpenDatasetRef(p)
		if err != nil {
			return 0, fmt.Errorf("partition %d: %w", i, err)
		}
		for {
			batch, err := d.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				d.Close()
				return 0, fmt.Errorf("partition %d: %w", i, err)
			}
			c := batch.Column(in.Column)
			vals, err := batch.Int64s(c)
			if err != nil {
				d.Close()
				return 0, fmt.Errorf("partition %d: %w", i, err)
			}
			for r, v := range vals {
				if batch.Valid(c, r) {
					sum += v
				}
			}
		}
		d.Close()
	}
	return sum, nil
}

func main() {}
