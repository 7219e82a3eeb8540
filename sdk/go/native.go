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
