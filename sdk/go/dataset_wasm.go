//go:build wasip1

package lumen

import "runtime"

//go:wasmimport lumen dataset_open
func lumen_dataset_open(ptr, n uint32) int64

//go:wasmimport lumen dataset_next
func lumen_dataset_next(h int64) int64

//go:wasmimport lumen dataset_schema
func lumen_dataset_schema(h int64) int64

//go:wasmimport lumen dataset_create
func lumen_dataset_create(ptr, n uint32) int64

//go:wasmimport lumen dataset_append
func lumen_dataset_append(h int64, ptr, n uint32) int32

//go:wasmimport lumen dataset_finish
func lumen_dataset_finish(h int64) int64

//go:wasmimport lumen dataset_close
func lumen_dataset_close(h int64) int32

func hostDatasetOpen(b []byte) int64   { return withBytes(b, lumen_dataset_open) }
func hostDatasetNext(h int64) int64    { return lumen_dataset_next(h) }
func hostDatasetSchema(h int64) int64  { return lumen_dataset_schema(h) }
func hostDatasetCreate(b []byte) int64 { return withBytes(b, lumen_dataset_create) }
func hostDatasetFinish(h int64) int64  { return lumen_dataset_finish(h) }
func hostDatasetClose(h int64) int32   { return lumen_dataset_close(h) }

func hostDatasetAppend(h int64, b []byte) int32 {
	r := lumen_dataset_append(h, ptrOf(b), uint32(len(b)))
	runtime.KeepAlive(b)
	return r
}

//go:wasmimport lumen dataset_write
func lumen_dataset_write(h int64, ptr, n uint32) int64

func hostDatasetWrite(h int64, b []byte) int64 {
	r := lumen_dataset_write(h, ptrOf(b), uint32(len(b)))
	runtime.KeepAlive(b)
	return r
}
