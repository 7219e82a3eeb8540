// Package model is Lumen's multimodal model: a byte-level BPE tokenizer, image-patch and
// log-mel audio front ends, one decoder-only transformer over text, image and audio positions
// (built on package gpu), seeded sampling, a synthetic multimodal training set, a trainer with
// resumable checkpoints, and [Local], which serves a trained model as an OpenAI-style backend.
// It knows nothing of workflows or the engine.
//
// # Concurrency
//
// A [Model] is read-only after training or loading and may be shared by goroutines that each
// hold their own [Cache]. A [Trainer] and a [Cache] are not safe for concurrent use.
package model
