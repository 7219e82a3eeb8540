//go:build wasip1

package lumen

//go:wasmimport lumen model_chat
func lumen_model_chat(ptr, n uint32) int64

func hostModelChat(b []byte) int64 { return withBytes(b, lumen_model_chat) }
