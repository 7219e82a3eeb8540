package data

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/apache/arrow/go/v17/parquet"
	"github.com/apache/arrow/go/v17/parquet/file"
	"github.com/apache/arrow/go/v17/parquet/pqarrow"
)

// listFiles expands a source path: a folder (every file below it whose name ends in one of exts,
// hidden files and folders skipped), a glob pattern, or one file. The result is sorted.
func listFiles(path string, exts []string) ([]string, error) {
	if path == "" {
		return nil, fmt.Errorf("%w: empty path", ErrBadInput)
	}
	if strings.ContainsAny(path, "*?[") {
		files, err := filepath.Glob(path)
		if err != nil {
			return nil, fmt.Errorf("%w: path %q: %v", ErrBadInput, path, err)
		}
		if len(files) == 0 {
			return nil, fmt.Errorf("%w: path %q matches no files", ErrBadInput, path)
		}
		sort.Strings(files)
		return files, nil
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("path %q: %w", path, err)
	}
	if !st.IsDir() {
		return []string{path}, nil
	}
	var files []string
	err = filepath.WalkDir(path, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != path && (strings.HasPrefix(e.Name(), ".") || strings.HasPrefix(e.Name(), "_")) {
			if e.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if !e.Type().IsRegular() {
			return nil
		}
		for _, x := range exts {
			if strings.HasSuffix(strings.ToLower(e.Name()), x) {
				files = append(files, p)
				break
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("folder %q: %w", path, err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("%w: folder %q holds no %s files", ErrBadInput, path, strings.Join(exts, " or "))
	}
	sort.Strings(files)
	return files, nil
}

// fileSource reads files one after another; partition i is file i.
type fileSource struct {
	kind  string
	path  string
	files []string
	open  func(ctx context.Context, s *stage, path string, want *arrow.Schema, emit func(arrow.Record) error) (*arrow.Schema, error)
}

func (f *fileSource) name() string { return fmt.Sprintf("%s(%s)", f.kind, f.path) }

func (f *fileSource) run(ctx context.Context, s *stage) error {
	var first *arrow.Schema
	var firstFile string
	for i, path := range f.files {
		batch := 0
		emit := func(rec arrow.Record) error {
			if first != nil {
				if d := schemaDiff(first, rec.Schema()); d != "" {
					rec.Release()
					return fmt.Errorf("file %s batch %d: %w with %s: %s", path, batch, ErrSchemaMismatch, firstFile, d)
				}
			} else {
				first, firstFile = rec.Schema(), path
			}
			batch++
			s.st.batchesIn.Add(1)
			s.st.rowsIn.Add(rec.NumRows())
			return s.emit(ctx, rec, i)
		}
		sch, err := f.open(ctx, s, path, first, emit)
		if err != nil {
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			if errors.Is(err, ErrSchemaMismatch) && strings.Contains(err.Error(), path) {
				return err
			}
			return fmt.Errorf("file %s: %w", path, err)
		}
		if first == nil && sch != nil {
			first, firstFile = sch, path
		} else if sch != nil {
			if d := schemaDiff(first, sch); d != "" {
				return fmt.Errorf("file %s: %w with %s: %s", path, ErrSchemaMismatch, firstFile, d)
			}
		}
	}
	return nil
}

// CSVOptions configure ReadCSV.
type CSVOptions struct {
	// Schema, when set, gives every column's name and type; the header must name the same
	// columns in the same order. Otherwise types are inferred from the first InferRows rows of
	// the first file (int64, float64, bool or string), and later files must match.
	Schema *arrow.Schema
	// Delimiter separates fields. Default ','.
	Delimiter rune
	// InferRows is how many rows inference looks at. Default 1000.
	InferRows int
}

// ReadCSV reads CSV files with a header row: path is a file, a folder (every *.csv below it) or
// a glob. An empty field is null. Errors name the file, line and column.
func ReadCSV(path string, opts ...CSVOptions) *Dataset {
	var o CSVOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	if o.Delimiter == 0 {
		o.Delimiter = ','
	}
	if o.InferRows <= 0 {
		o.InferRows = 1000
	}
	files, err := listFiles(path, []string{".csv", ".csv.txt", ".tsv"})
	if err != nil {
		return failed("read_csv", err)
	}
	if o.Schema != nil {
		for _, f := range o.Schema.Fields() {
			if _, ok := vtypeOf(f.Type); !ok || f.Type.ID() == arrow.NULL {
				return failed("read_csv", fmt.Errorf("%w: column %q of type %s cannot be read from CSV", ErrUnsupportedType, f.Name, f.Type))
			}
		}
	}
	return newDataset(&fileSource{kind: "read_csv", path: path, files: files, open: func(ctx context.Context, s *stage, p string, want *arrow.Schema, emit func(arrow.Record) error) (*arrow.Schema, error) {
		if want == nil {
			want = o.Schema
		}
		return readCSVFile(ctx, s.mem(), s.x.opts.BatchRows, p, o, want, emit)
	}})
}

func readCSVFile(ctx context.Context, mem memory.Allocator, batchRows int, path string, o CSVOptions, schema *arrow.Schema, emit func(arrow.Record) error) (*arrow.Schema, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return decodeCSV(ctx, mem, batchRows, f, o, schema, emit)
}

// decodeCSV reads CSV with a header from in: the types of schema, or inferred when it is nil.
func decodeCSV(ctx context.Context, mem memory.Allocator, batchRows int, in io.Reader, o CSVOptions, schema *arrow.Schema, emit func(arrow.Record) error) (*arrow.Schema, error) {
	r := csv.NewReader(bufio.NewReaderSize(in, 1<<16))
	r.Comma = o.Delimiter
	r.ReuseRecord = false
	header, err := r.Read()
	if err == io.EOF {
		return schema, nil // an empty file: no header, no rows
	}
	if err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrBadInput, err)
	}
	seen := map[string]bool{}
	for i, h := range header {
		if h == "" {
			return nil, fmt.Errorf("%w: header: column %d has no name", ErrBadInput, i+1)
		}
		if seen[h] {
			return nil, fmt.Errorf("%w: header: column %q appears twice", ErrBadInput, h)
		}
		seen[h] = true
	}
	var pending [][]string
	if schema == nil {
		for len(pending) < o.InferRows {
			rec, err := r.Read()
			if err == io.EOF {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("%w: %v", ErrBadInput, err)
			}
			pending = append(pending, rec)
		}
		schema = inferCSVSchema(header, pending)
	} else {
		if len(header) != schema.NumFields() {
			return nil, fmt.Errorf("%w: header has %d columns %v, want %d %v", ErrSchemaMismatch, len(header), header, schema.NumFields(), fieldNames(schema))
		}
		for i, h := range header {
			if schema.Field(i).Name != h {
				return nil, fmt.Errorf("%w: header column %d is %q, want %q", ErrSchemaMismatch, i+1, h, schema.Field(i).Name)
			}
		}
	}
	b := array.NewRecordBuilder(mem, schema)
	defer b.Release()
	rows := 0
	flush := func() error {
		if rows == 0 {
			return nil
		}
		rows = 0
		return emit(b.NewRecord())
	}
	add := func(rec []string) error {
		line, _ := r.FieldPos(0)
		for c, cell := range rec {
			if cell == "" {
				b.Field(c).AppendNull()
				continue
			}
			var err error
			switch fb := b.Field(c).(type) {
			case *array.Int64Builder:
				var v int64
				if v, err = strconv.ParseInt(cell, 10, 64); err == nil {
					fb.Append(v)
				}
			case *array.Float64Builder:
				var v float64
				if v, err = strconv.ParseFloat(cell, 64); err == nil {
					fb.Append(v)
				}
			case *array.StringBuilder:
				fb.Append(cell)
			default:
				var v any
				if v, err = parseCell(schema.Field(c).Type, cell); err == nil {
					err = appendAny(fb, v)
				}
			}
			if err != nil {
				return fmt.Errorf("%w: line %d column %q: %q: %v", ErrBadInput, line, schema.Field(c).Name, cell, err)
			}
		}
		rows++
		if rows >= batchRows {
			return flush()
		}
		return nil
	}
	for _, rec := range pending {
		if err := add(rec); err != nil {
			return nil, err
		}
	}
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadInput, err)
		}
		if err := add(rec); err != nil {
			return nil, err
		}
	}
	return schema, flush()
}

func parseCell(dt arrow.DataType, s string) (any, error) {
	switch dt.ID() {
	case arrow.STRING, arrow.LARGE_STRING:
		return s, nil
	case arrow.BOOL:
		return strconv.ParseBool(strings.ToLower(s))
	case arrow.FLOAT32, arrow.FLOAT64:
		return strconv.ParseFloat(s, 64)
	case arrow.UINT8, arrow.UINT16, arrow.UINT32, arrow.UINT64:
		return strconv.ParseUint(s, 10, 64)
	}
	return strconv.ParseInt(s, 10, 64)
}

func inferCSVSchema(header []string, rows [][]string) *arrow.Schema {
	fields := make([]arrow.Field, len(header))
	for c, h := range header {
		isInt, isFloat, isBool, any := true, true, true, false
		for _, r := range rows {
			s := r[c]
			if s == "" {
				continue
			}
			any = true
			if isInt {
				if _, err := strconv.ParseInt(s, 10, 64); err != nil {
					isInt = false
				}
			}
			if isFloat && !isInt {
				if _, err := strconv.ParseFloat(s, 64); err != nil {
					isFloat = false
				}
			}
			if isBool {
				if _, err := strconv.ParseBool(strings.ToLower(s)); err != nil || s == "0" || s == "1" {
					isBool = false
				}
			}
		}
		var t arrow.DataType = arrow.BinaryTypes.String
		switch {
		case !any:
		case isInt:
			t = arrow.PrimitiveTypes.Int64
		case isFloat:
			t = arrow.PrimitiveTypes.Float64
		case isBool:
			t = arrow.FixedWidthTypes.Boolean
		}
		fields[c] = arrow.Field{Name: h, Type: t, Nullable: true}
	}
	return arrow.NewSchema(fields, nil)
}

// JSONLOptions configure ReadJSONL.
type JSONLOptions struct {
	// Schema, when set, gives the columns; otherwise they are inferred from the first InferRows
	// lines of the first file, in first-seen key order.
	Schema *arrow.Schema
	// InferRows is how many lines inference looks at. Default 1000.
	InferRows int
}

// maxJSONLine bounds one JSON line.
const maxJSONLine = 64 << 20

// ReadJSONL reads JSON lines files (one object per line; blank lines skipped): path is a file, a
// folder (every *.jsonl, *.ndjson or *.json below it) or a glob. A missing key is null; nested
// objects and arrays are kept as their JSON text in a string column; a key outside the schema is
// an error naming the file, line and key.
func ReadJSONL(path string, opts ...JSONLOptions) *Dataset {
	var o JSONLOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	if o.InferRows <= 0 {
		o.InferRows = 1000
	}
	files, err := listFiles(path, []string{".jsonl", ".ndjson", ".json"})
	if err != nil {
		return failed("read_jsonl", err)
	}
	return newDataset(&fileSource{kind: "read_jsonl", path: path, files: files, open: func(ctx context.Context, s *stage, p string, want *arrow.Schema, emit func(arrow.Record) error) (*arrow.Schema, error) {
		if want == nil {
			want = o.Schema
		}
		f, err := os.Open(p)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return decodeJSONL(ctx, s.mem(), s.x.opts.BatchRows, f, o.InferRows, want, emit)
	}})
}

// jsonObject is one decoded line: keys in order and their values (json.Number, string, bool,
// nil, or the raw JSON text of a nested value as json.RawMessage).
type jsonObject struct {
	keys []string
	vals []any
}

func parseJSONObject(line []byte) (jsonObject, error) {
	var o jsonObject
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	t, err := dec.Token()
	if err != nil {
		return o, err
	}
	if d, ok := t.(json.Delim); !ok || d != '{' {
		return o, errors.New("line is not a JSON object")
	}
	seen := map[string]bool{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return o, err
		}
		k, ok := t.(string)
		if !ok {
			return o, errors.New("object key is not a string")
		}
		if seen[k] {
			return o, fmt.Errorf("key %q appears twice", k)
		}
		seen[k] = true
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return o, fmt.Errorf("key %q: %v", k, err)
		}
		var v any
		switch {
		case len(raw) > 0 && (raw[0] == '{' || raw[0] == '['):
			v = raw
		default:
			d2 := json.NewDecoder(bytes.NewReader(raw))
			d2.UseNumber()
			if err := d2.Decode(&v); err != nil {
				return o, fmt.Errorf("key %q: %v", k, err)
			}
		}
		o.keys = append(o.keys, k)
		o.vals = append(o.vals, v)
	}
	if _, err := dec.Token(); err != nil {
		return o, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return o, errors.New("text after the JSON object")
	}
	return o, nil
}

// jsonType is the Arrow type a JSON value infers as (nil for null).
func jsonType(v any) arrow.DataType {
	switch x := v.(type) {
	case json.Number:
		if _, err := x.Int64(); err == nil {
			return arrow.PrimitiveTypes.Int64
		}
		return arrow.PrimitiveTypes.Float64
	case string, json.RawMessage:
		return arrow.BinaryTypes.String
	case bool:
		return arrow.FixedWidthTypes.Boolean
	}
	return nil
}

// jsonValue converts a decoded JSON value to the value appendAny takes for dt.
func jsonValue(v any, dt arrow.DataType) (any, error) {
	switch x := v.(type) {
	case nil:
		return nil, nil
	case json.Number:
		switch dt.ID() {
		case arrow.FLOAT32, arrow.FLOAT64:
			f, err := x.Float64()
			return f, err
		case arrow.UINT8, arrow.UINT16, arrow.UINT32, arrow.UINT64:
			return strconv.ParseUint(x.String(), 10, 64)
		case arrow.STRING, arrow.LARGE_STRING, arrow.BOOL, arrow.BINARY:
			return nil, fmt.Errorf("number %s in a %s column", x, dt)
		}
		i, err := x.Int64()
		if err != nil {
			return nil, fmt.Errorf("%s is not an integer", x)
		}
		return i, nil
	case json.RawMessage:
		var buf bytes.Buffer
		if err := json.Compact(&buf, x); err != nil {
			return nil, err
		}
		return buf.String(), nil
	}
	return v, nil
}

func decodeJSONL(ctx context.Context, mem memory.Allocator, batchRows int, r io.Reader, inferRows int, schema *arrow.Schema, emit func(arrow.Record) error) (*arrow.Schema, error) {
	br := bufio.NewReaderSize(r, 1<<16)
	lineNo := 0
	type line struct {
		no  int
		obj jsonObject
	}
	next := func() (line, error) {
		for {
			var buf []byte
			for {
				chunk, err := br.ReadSlice('\n')
				buf = append(buf, chunk...)
				if len(buf) > maxJSONLine {
					return line{}, fmt.Errorf("%w: line %d is over %d bytes", ErrTooLarge, lineNo+1, maxJSONLine)
				}
				if err == bufio.ErrBufferFull {
					continue
				}
				if err == io.EOF && len(buf) == 0 {
					return line{}, io.EOF
				}
				if err != nil && err != io.EOF {
					return line{}, err
				}
				break
			}
			lineNo++
			if len(bytes.TrimSpace(buf)) == 0 {
				continue
			}
			obj, err := parseJSONObject(buf)
			if err != nil {
				return line{}, fmt.Errorf("%w: line %d: %v", ErrBadInput, lineNo, err)
			}
			return line{lineNo, obj}, nil
		}
	}
	var pending []line
	if schema == nil {
		var names []string
		types := map[string]arrow.DataType{}
		for len(pending) < inferRows {
			l, err := next()
			if err == io.EOF {
				break
			}
			if err != nil {
				return nil, err
			}
			pending = append(pending, l)
			for k, key := range l.obj.keys {
				t := jsonType(l.obj.vals[k])
				old, known := types[key]
				if !known {
					names = append(names, key)
				}
				switch {
				case old == nil:
					types[key] = t
				case t == nil || arrow.TypeEqual(old, t):
				case old.ID() == arrow.INT64 && t.ID() == arrow.FLOAT64:
					types[key] = t
				case old.ID() == arrow.FLOAT64 && t.ID() == arrow.INT64:
				default:
					return nil, fmt.Errorf("%w: line %d key %q: %s value in a column of %s", ErrSchemaMismatch, l.no, key, t, old)
				}
			}
		}
		fields := make([]arrow.Field, len(names))
		for i, n := range names {
			t := types[n]
			if t == nil {
				t = arrow.BinaryTypes.String // only nulls seen
			}
			fields[i] = arrow.Field{Name: n, Type: t, Nullable: true}
		}
		schema = arrow.NewSchema(fields, nil)
	}
	if schema.NumFields() == 0 {
		return schema, nil
	}
	b := array.NewRecordBuilder(mem, schema)
	defer b.Release()
	rows := 0
	set := make([]bool, schema.NumFields())
	add := func(l line) error {
		clear(set)
		for k, key := range l.obj.keys {
			idx := schema.FieldIndices(key)
			if len(idx) == 0 {
				return fmt.Errorf("%w: line %d: key %q is not a column (columns: %v)", ErrSchemaMismatch, l.no, key, fieldNames(schema))
			}
			c := idx[0]
			v, err := jsonValue(l.obj.vals[k], schema.Field(c).Type)
			if err == nil {
				err = appendAny(b.Field(c), v)
			}
			if err != nil {
				return fmt.Errorf("%w: line %d column %q: %v", ErrBadInput, l.no, key, err)
			}
			set[c] = true
		}
		for c, ok := range set {
			if !ok {
				b.Field(c).AppendNull()
			}
		}
		rows++
		if rows >= batchRows {
			rows = 0
			return emit(b.NewRecord())
		}
		return nil
	}
	for _, l := range pending {
		if err := add(l); err != nil {
			return nil, err
		}
	}
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		l, err := next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if err := add(l); err != nil {
			return nil, err
		}
	}
	if rows > 0 {
		return schema, emit(b.NewRecord())
	}
	return schema, nil
}

// ReadParquet reads Parquet files: path is a file, a folder (every *.parquet below it) or a
// glob. A corrupt file is an error naming it.
func ReadParquet(path string) *Dataset {
	files, err := listFiles(path, []string{".parquet", ".pq"})
	if err != nil {
		return failed("read_parquet", err)
	}
	return newDataset(&fileSource{kind: "read_parquet", path: path, files: files, open: readParquetFile})
}

func readParquetFile(ctx context.Context, s *stage, path string, _ *arrow.Schema, emit func(arrow.Record) error) (sch *arrow.Schema, err error) {
	defer func() {
		if p := recover(); p != nil {
			if e, ok := p.(errAllocLimit); ok {
				err = fmt.Errorf("%w: corrupt Parquet: %v", ErrTooLarge, e)
				return
			}
			err = fmt.Errorf("%w: corrupt Parquet: %v", ErrBadInput, p)
		}
	}()
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	// Forged lengths inside a Parquet file make the reader allocate what they say: cap what it may
	// hold at once well above what a real file of this size needs.
	mem := &limitAllocator{mem: s.mem(), limit: 64*st.Size() + 64<<20}
	props := parquet.NewReaderProperties(mem)
	props.BufferedStreamEnabled = true // read column chunks through a small buffer, not one slice of their claimed size
	pf, err := file.OpenParquetFile(path, false, file.WithReadProps(props))
	if err != nil {
		return nil, fmt.Errorf("%w: not a readable Parquet file: %v", ErrBadInput, err)
	}
	defer pf.Close()
	if err := checkParquetChunks(pf, st.Size()); err != nil {
		return nil, err
	}
	// The Arrow schema stored in the metadata is IPC bytes the arrow reader trusts: verify it.
	if v := pf.MetaData().KeyValueMetadata().FindValue("ARROW:schema"); v != nil {
		decoded, err := base64.StdEncoding.DecodeString(*v)
		if err != nil || len(decoded) == 0 {
			decoded, err = base64.RawStdEncoding.DecodeString(*v)
		}
		if err != nil {
			return nil, fmt.Errorf("%w: corrupt Parquet: ARROW:schema metadata: %v", ErrBadInput, err)
		}
		if err := checkStoredSchema(decoded); err != nil {
			return nil, fmt.Errorf("corrupt Parquet: ARROW:schema metadata: %w", err)
		}
	}
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: int64(s.x.opts.BatchRows)}, mem)
	if err != nil {
		return nil, fmt.Errorf("%w: Parquet schema: %v", ErrBadInput, err)
	}
	rr, err := fr.GetRecordReader(ctx, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: Parquet: %v", ErrBadInput, err)
	}
	defer rr.Release()
	sch = rr.Schema()
	for rr.Next() {
		rec := rr.Record()
		if err := validateRecord(rec); err != nil {
			return nil, err
		}
		rec.Retain()
		if err := emit(rec); err != nil {
			return nil, err
		}
	}
	if err := rr.Err(); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: corrupt Parquet: %v", ErrBadInput, err)
	}
	return sch, nil
}

// checkParquetChunks checks that every column chunk lies inside the file. pqarrow reads column
// chunks from goroutines of its own, where a forged offset or length would panic out of reach of
// any recover and take the process down.
func checkParquetChunks(pf *file.Reader, size int64) error {
	md := pf.MetaData()
	for rg := range len(md.RowGroups) {
		rgm := md.RowGroup(rg)
		if rgm.NumRows() < 0 {
			return fmt.Errorf("%w: corrupt Parquet: row group %d has %d rows", ErrBadInput, rg, rgm.NumRows())
		}
		for c := range rgm.NumColumns() {
			col, err := rgm.ColumnChunk(c)
			if err != nil {
				return fmt.Errorf("%w: corrupt Parquet: row group %d column %d: %v", ErrBadInput, rg, c, err)
			}
			start := col.DataPageOffset()
			if col.HasDictionaryPage() && col.DictionaryPageOffset() > 0 && start > col.DictionaryPageOffset() {
				start = col.DictionaryPageOffset()
			}
			n := col.TotalCompressedSize()
			if start < 0 || n < 0 || start > size || n > size-start {
				return fmt.Errorf("%w: corrupt Parquet: row group %d column %q spans bytes %d+%d of a %d-byte file", ErrBadInput, rg, col.PathInSchema().String(), start, n, size)
			}
		}
	}
	return nil
}

// FromItems makes a dataset of Go rows. Columns are the union of the maps' keys, sorted by name;
// a key missing from a row is null. Values may be nil, bool, string, []byte, any Go integer or
// float type, or json.Number; a column mixing integers and floats is float64.
func FromItems(items []map[string]any) *Dataset {
	schema, err := itemsSchema(items)
	if err != nil {
		return failed("from_items", err)
	}
	rows := append([]map[string]any(nil), items...)
	return newDataset(&itemsSource{schema: schema, items: rows})
}

// itemsSchema infers the schema of Go rows as FromItems documents.
func itemsSchema(items []map[string]any) (*arrow.Schema, error) {
	types := map[string]arrow.DataType{}
	for i, it := range items {
		for k, v := range it {
			t, err := goType(v)
			if err != nil {
				return nil, fmt.Errorf("item %d key %q: %w", i, k, err)
			}
			old, ok := types[k]
			switch {
			case !ok || old == nil:
				types[k] = t
			case t == nil || arrow.TypeEqual(old, t):
			case isNum(old) && isNum(t):
				types[k] = arrow.PrimitiveTypes.Float64
			default:
				return nil, fmt.Errorf("item %d key %q: %w: %s value in a column of %s", i, k, ErrSchemaMismatch, t, old)
			}
		}
	}
	names := make([]string, 0, len(types))
	for k := range types {
		names = append(names, k)
	}
	slices.Sort(names)
	fields := make([]arrow.Field, len(names))
	for i, n := range names {
		t := types[n]
		if t == nil {
			t = arrow.Null
		}
		fields[i] = arrow.Field{Name: n, Type: t, Nullable: true}
	}
	return arrow.NewSchema(fields, nil), nil
}

func isNum(t arrow.DataType) bool {
	return t.ID() == arrow.INT64 || t.ID() == arrow.FLOAT64
}

func goType(v any) (arrow.DataType, error) {
	switch x := v.(type) {
	case nil:
		return nil, nil
	case bool:
		return arrow.FixedWidthTypes.Boolean, nil
	case string:
		return arrow.BinaryTypes.String, nil
	case []byte:
		return arrow.BinaryTypes.Binary, nil
	case int, int8, int16, int32, int64, uint8, uint16, uint32:
		return arrow.PrimitiveTypes.Int64, nil
	case uint, uint64:
		return arrow.PrimitiveTypes.Uint64, nil
	case float32, float64:
		return arrow.PrimitiveTypes.Float64, nil
	case json.Number:
		return jsonType(x), nil
	}
	return nil, fmt.Errorf("%w: Go value of type %T", ErrUnsupportedType, v)
}

// normGo converts a Go value accepted by goType to the value appendAny takes.
func normGo(v any) any {
	switch x := v.(type) {
	case int:
		return int64(x)
	case int8:
		return int64(x)
	case int16:
		return int64(x)
	case int32:
		return int64(x)
	case uint8:
		return int64(x)
	case uint16:
		return int64(x)
	case uint32:
		return int64(x)
	case uint:
		return uint64(x)
	case float32:
		if math.IsNaN(float64(x)) {
			return math.NaN()
		}
		return float64(x)
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, _ := x.Float64()
		return f
	}
	return v
}

type itemsSource struct {
	schema *arrow.Schema
	items  []map[string]any
}

func (s *itemsSource) name() string { return fmt.Sprintf("from_items(%d)", len(s.items)) }

func (s *itemsSource) run(ctx context.Context, st *stage) error {
	if len(s.items) == 0 {
		return nil
	}
	b := array.NewRecordBuilder(st.mem(), s.schema)
	defer b.Release()
	rows := 0
	for i, it := range s.items {
		for c, f := range s.schema.Fields() {
			if f.Type.ID() == arrow.NULL {
				b.Field(c).AppendNull()
				continue
			}
			if err := appendAny(b.Field(c), normGo(it[f.Name])); err != nil {
				return fmt.Errorf("item %d key %q: %w", i, f.Name, err)
			}
		}
		rows++
		if rows == st.x.opts.BatchRows || i == len(s.items)-1 {
			rec := b.NewRecord()
			st.st.batchesIn.Add(1)
			st.st.rowsIn.Add(rec.NumRows())
			if err := st.emit(ctx, rec, 0); err != nil {
				return err
			}
			rows = 0
		}
	}
	return nil
}

// FromRecords makes a dataset of existing record batches (all with the same schema), one
// partition. It retains them until the Dataset is garbage: each run emits them again; the caller
// keeps its own references and must not modify the batches.
func FromRecords(recs []arrow.Record) *Dataset {
	if len(recs) > 0 {
		for i, r := range recs {
			if r == nil {
				return failed("from_records", fmt.Errorf("%w: record %d is nil", ErrBadInput, i))
			}
			if d := schemaDiff(recs[0].Schema(), r.Schema()); d != "" {
				return failed("from_records", fmt.Errorf("record %d: %w: %s", i, ErrSchemaMismatch, d))
			}
		}
	}
	return newDataset(&recordsSource{recs: append([]arrow.Record(nil), recs...)})
}

type recordsSource struct{ recs []arrow.Record }

func (s *recordsSource) name() string { return fmt.Sprintf("from_records(%d)", len(s.recs)) }

func (s *recordsSource) run(ctx context.Context, st *stage) error {
	for _, r := range s.recs {
		r.Retain()
		st.st.batchesIn.Add(1)
		st.st.rowsIn.Add(r.NumRows())
		if err := st.emit(ctx, r, 0); err != nil {
			return err
		}
	}
	return nil
}
