//go:build !wasip1

package lumen

import "github.com/lumenflow/lumen/sdk/abi"

// Outside a Lumen host every host function reports abi.ErrUnavailable, so task functions can be
// called and tested as plain Go; logs go nowhere.

var unavailable = abi.ErrUnavailable.Code()

func hostLog(int32, []byte)            {}
func hostObjectPut([]byte) int64       { return unavailable }
func hostObjectGet(int64, int64) int64 { return unavailable }
func hostObjectRelease(int64) int32    { return int32(unavailable) }
func hostTaskSubmit([]byte) int64      { return unavailable }
func hostTaskCancel(int64) int32       { return int32(unavailable) }
func hostWait([]byte) int64            { return unavailable }
func hostActorCreate([]byte) int64     { return unavailable }
func hostActorCall([]byte) int64       { return unavailable }
func hostActorKill(int64) int32        { return int32(unavailable) }
func takeResult(int64) []byte          { return []byte("not running under a Lumen host") }

func hostTensorCreate(_, _ []byte) int64 { return unavailable }
func hostTensorOp([]byte) int64          { return unavailable }
func hostOptimCreate([]byte) int64       { return unavailable }
func hostTensorRead(int64) int64         { return unavailable }
func hostTensorInfo(int64) int64         { return unavailable }
func hostTensorBackward(int64) int32     { return int32(unavailable) }
func hostTensorGrad(int64) int64         { return unavailable }
func hostTensorFree(int64) int32         { return int32(unavailable) }
func hostOptimStep(int64) int32          { return int32(unavailable) }
func hostOptimZeroGrad(int64) int32      { return int32(unavailable) }
