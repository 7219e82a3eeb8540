package wire

import (
	"context"
	"errors"

	"github.com/lumenflow/lumen/sdk/abi"
)

// ABIError is err in the ABI's shape, as a guest waiting on the work reads it and as a
// workflow's or a job's status reports it: an *abi.Error in err's chain as it is, a cancellation
// as KindCancelled ("the <what> was cancelled"), anything else as KindSystem (a node or host
// failure, which the engine retries).
func ABIError(err error, what string) *abi.Error {
	var ae *abi.Error
	if errors.As(err, &ae) {
		return ae
	}
	if errors.Is(err, context.Canceled) {
		return &abi.Error{Kind: abi.KindCancelled, Message: "the " + what + " was cancelled"}
	}
	return &abi.Error{Kind: abi.KindSystem, Message: err.Error()}
}
