//go:build !wasip1

package lumen

func hostDatasetOpen([]byte) int64          { return unavailable }
func hostDatasetNext(int64) int64           { return unavailable }
func hostDatasetSchema(int64) int64         { return unavailable }
func hostDatasetCreate([]byte) int64        { return unavailable }
func hostDatasetAppend(int64, []byte) int32 { return int32(unavailable) }
func hostDatasetFinish(int64) int64         { return unavailable }
func hostDatasetClose(int64) int32          { return int32(unavailable) }
func hostDatasetWrite(int64, []byte) int64  { return unavailable }
