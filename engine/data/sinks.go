package data

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/csv"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/apache/arrow/go/v17/parquet"
	"github.com/apache/arrow/go/v17/parquet/compress"
	"github.com/apache/arrow/go/v17/parquet/pqarrow"
)

// WriteResult says what a writer wrote.
type WriteResult struct {
	Files []string `json:"files"`
	Rows  int64    `json:"rows"`
}

// batchWriter writes the batches of one output file.
type batchWriter interface {
	write(rec arrow.Record) error
	close() error
}

// writeFiles runs d and writes one file per output partition into dir, named part-NNNNN.ext.
// Each file is written under a hidden temporary name and renamed when complete; on failure the
// incomplete file is removed and files already completed are left (and listed in the error).
func (d *Dataset) writeFiles(ctx context.Context, dir, ext string, open func(w io.Writer, schema *arrow.Schema, mem memory.Allocator) (batchWriter, error)) (WriteResult, error) {
	var res WriteResult
	if dir == "" {
		return res, fmt.Errorf("%w: empty output path", ErrBadInput)
	}
	if d.err != nil {
		return res, d.err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return res, fmt.Errorf("output folder: %w", err)
	}
	mem := d.options().withDefaults().Allocator
	var (
		f       *os.File
		bw      *bufio.Writer
		w       batchWriter
		schema  *arrow.Schema
		tmpName string
		final   string
		curPart = -1
		batch   int
	)
	finish := func() error {
		if w == nil {
			return nil
		}
		err := w.close()
		if e := bw.Flush(); err == nil {
			err = e
		}
		if e := f.Close(); err == nil {
			err = e
		}
		if err == nil {
			err = os.Rename(tmpName, final)
		}
		w = nil
		if err != nil {
			os.Remove(tmpName)
			return fmt.Errorf("file %s: %w", final, err)
		}
		res.Files = append(res.Files, final)
		return nil
	}
	err := d.run(ctx, func(it item) error {
		rec := it.rec
		if schema == nil {
			schema = rec.Schema()
		} else if diff := schemaDiff(schema, rec.Schema()); diff != "" {
			return fmt.Errorf("batch %d: %w: %s", batch, ErrSchemaMismatch, diff)
		} else if !schema.Equal(rec.Schema()) {
			rec = array.NewRecord(schema, rec.Columns(), rec.NumRows())
			defer rec.Release()
		}
		batch++
		if w == nil || it.part != curPart {
			if err := finish(); err != nil {
				return err
			}
			final = filepath.Join(dir, fmt.Sprintf("part-%05d%s", len(res.Files), ext))
			tmpName = filepath.Join(dir, "."+filepath.Base(final)+".tmp")
			var err error
			if f, err = os.Create(tmpName); err != nil {
				return fmt.Errorf("output: %w", err)
			}
			bw = bufio.NewWriterSize(f, 1<<16)
			if w, err = open(bw, schema, mem); err != nil {
				f.Close()
				os.Remove(tmpName)
				w = nil
				return fmt.Errorf("file %s: %w", final, err)
			}
			curPart = it.part
		}
		if err := w.write(rec); err != nil {
			return fmt.Errorf("file %s batch %d: %w", final, batch-1, err)
		}
		res.Rows += rec.NumRows()
		return nil
	})
	if err == nil {
		err = finish()
	} else if w != nil {
		w.close()
		f.Close()
		os.Remove(tmpName)
	}
	if err != nil {
		if len(res.Files) > 0 {
			return res, fmt.Errorf("%w (completed before the failure: %v)", err, res.Files)
		}
		return res, err
	}
	return res, nil
}

type parquetWriter struct{ w *pqarrow.FileWriter }

func (p parquetWriter) write(rec arrow.Record) error { return p.w.Write(rec) }
func (p parquetWriter) close() error                 { return p.w.Close() }

// WriteParquet runs the plan and writes one Snappy-compressed Parquet file per output partition
// into dir (created if needed), storing the Arrow schema so types round-trip.
func (d *Dataset) WriteParquet(ctx context.Context, dir string) (WriteResult, error) {
	return d.writeFiles(ctx, dir, ".parquet", func(w io.Writer, schema *arrow.Schema, mem memory.Allocator) (batchWriter, error) {
		props := parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Snappy), parquet.WithAllocator(mem))
		fw, err := pqarrow.NewFileWriter(schema, w, props, pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema(), pqarrow.WithAllocator(mem)))
		if err != nil {
			return nil, err
		}
		return parquetWriter{fw}, nil
	})
}

type csvWriter struct{ w *csv.Writer }

func (c csvWriter) write(rec arrow.Record) error { return c.w.Write(rec) }
func (c csvWriter) close() error                 { c.w.Flush(); return c.w.Error() }

// WriteCSV runs the plan and writes one CSV file (with a header) per output partition into dir.
// Nulls are written as empty fields.
func (d *Dataset) WriteCSV(ctx context.Context, dir string) (WriteResult, error) {
	return d.writeFiles(ctx, dir, ".csv", func(w io.Writer, schema *arrow.Schema, _ memory.Allocator) (batchWriter, error) {
		for _, f := range schema.Fields() {
			if !scalarType(f.Type) && f.Type.ID() != arrow.NULL {
				return nil, fmt.Errorf("%w: column %q of type %s cannot be written as CSV", ErrUnsupportedType, f.Name, f.Type)
			}
		}
		return csvWriter{csv.NewWriter(w, schema, csv.WithHeader(true), csv.WithNullWriter(""))}, nil
	})
}

type jsonlWriter struct {
	w   io.Writer
	buf []byte
}

// WriteJSONL runs the plan and writes one JSON lines file per output partition into dir: one
// object per row, keys in column order. NaN and infinite floats are written as null (JSON has no
// form for them); binary is base64; nested types use Arrow's JSON form.
func (d *Dataset) WriteJSONL(ctx context.Context, dir string) (WriteResult, error) {
	return d.writeFiles(ctx, dir, ".jsonl", func(w io.Writer, _ *arrow.Schema, _ memory.Allocator) (batchWriter, error) {
		return &jsonlWriter{w: w}, nil
	})
}

func (j *jsonlWriter) write(rec arrow.Record) error {
	s := rec.Schema()
	names := make([][]byte, s.NumFields())
	for c := range names {
		names[c], _ = json.Marshal(s.Field(c).Name)
	}
	for r := range int(rec.NumRows()) {
		b := append(j.buf[:0], '{')
		for c := range s.NumFields() {
			if c > 0 {
				b = append(b, ',')
			}
			b = append(b, names[c]...)
			b = append(b, ':')
			col := rec.Column(c)
			if !scalarType(col.DataType()) {
				v, err := json.Marshal(col.GetOneForMarshal(r))
				if err != nil {
					return fmt.Errorf("row %d column %q: %w", r, s.Field(c).Name, err)
				}
				b = append(b, v...)
				continue
			}
			switch v := getValue(col, r).(type) {
			case nil:
				b = append(b, "null"...)
			case int64:
				b = strconv.AppendInt(b, v, 10)
			case uint64:
				b = strconv.AppendUint(b, v, 10)
			case float64:
				if math.IsNaN(v) || math.IsInf(v, 0) {
					b = append(b, "null"...)
				} else {
					n := len(b)
					b = strconv.AppendFloat(b, v, 'g', -1, 64)
					if !bytes.ContainsAny(b[n:], ".e") {
						b = append(b, ".0"...) // keep the column a float when read back
					}
				}
			case bool:
				b = strconv.AppendBool(b, v)
			default:
				x, err := json.Marshal(v)
				if err != nil {
					return fmt.Errorf("row %d column %q: %w", r, s.Field(c).Name, err)
				}
				b = append(b, x...)
			}
		}
		b = append(b, '}', '\n')
		j.buf = b
		if _, err := j.w.Write(b); err != nil {
			return err
		}
	}
	return nil
}

func (j *jsonlWriter) close() error { return nil }
