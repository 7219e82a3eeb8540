package data

import "errors"

// Sentinel errors. Errors returned by this package wrap one of these where it applies, with the
// file, column, batch or step that failed.
var (
	// ErrSchemaMismatch: two batches, files or inputs that must share a schema do not.
	ErrSchemaMismatch = errors.New("data: schema mismatch")
	// ErrBadInput: input bytes (a file, IPC bytes, JSON) could not be decoded.
	ErrBadInput = errors.New("data: bad input")
	// ErrBadExpr: an expression did not parse or does not type-check against its schema.
	ErrBadExpr = errors.New("data: bad expression")
	// ErrBadPipeline: a JSON pipeline spec is invalid.
	ErrBadPipeline = errors.New("data: bad pipeline")
	// ErrUnsupportedType: a column's Arrow type is not supported by the operator that met it.
	ErrUnsupportedType = errors.New("data: unsupported type")
	// ErrUDF: a user function failed or returned a malformed batch.
	ErrUDF = errors.New("data: user function")
	// ErrTooLarge: an input is past a configured size limit.
	ErrTooLarge = errors.New("data: too large")
)
