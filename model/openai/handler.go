package openai

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// HandlerConfig configures a Handler.
type HandlerConfig struct {
	// Backend serves the completions. Required.
	Backend Backend
	// Dir holds uploaded files and batch records; a restart keeps them. Required.
	Dir string
	// Filter, when set, refuses requests and answers in its categories (see WithFilter).
	Filter *Filter
	// Validate sets the deployment's request limits.
	Validate ValidateOptions
	// MaxBodyBytes caps a chat-completions body (default 32 MiB, room for images).
	MaxBodyBytes int64
	// MaxFileBytes caps an uploaded file (default 200 MiB).
	MaxFileBytes int64
	// BatchRunner runs batches (default: a PoolRunner over the filtered Backend).
	BatchRunner BatchRunner
	// BatchConcurrency is the default runner's concurrency (default 4).
	BatchConcurrency int
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logf logs server-side failures whose text is not sent to clients (default: dropped).
	Logf func(format string, args ...any)
}

// Handler serves the OpenAI-compatible API:
//
//	POST /v1/chat/completions      GET /v1/models, /v1/models/{id}
//	POST /v1/files                 GET /v1/files, /v1/files/{id}, /v1/files/{id}/content; DELETE /v1/files/{id}
//	POST /v1/batches               GET /v1/batches, /v1/batches/{id}; POST /v1/batches/{id}/cancel
//
// It is safe for concurrent use. Close stops running batches; batches that did not finish are
// run again from the start by the next Handler over the same Dir.
type Handler struct {
	cfg     HandlerConfig
	backend Backend // filtered
	store   *store
	mux     *http.ServeMux

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	running map[string]context.CancelFunc // cancels a running batch
	live    map[string]*Batch             // records of running batches, changed under mu
}

// NewHandler validates cfg, opens the store and resumes unfinished batches.
func NewHandler(cfg HandlerConfig) (*Handler, error) {
	if cfg.Backend == nil {
		return nil, errors.New("openai: HandlerConfig.Backend is required")
	}
	if cfg.Dir == "" {
		return nil, errors.New("openai: HandlerConfig.Dir is required")
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 32 << 20
	}
	if cfg.MaxFileBytes <= 0 {
		cfg.MaxFileBytes = 200 << 20
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	st, err := newStore(cfg.Dir)
	if err != nil {
		return nil, err
	}
	h := &Handler{cfg: cfg, backend: WithFilter(cfg.Backend, cfg.Filter), store: st, running: map[string]context.CancelFunc{}, live: map[string]*Batch{}}
	if h.cfg.BatchRunner == nil {
		h.cfg.BatchRunner = &PoolRunner{Backend: h.backend, Concurrency: cfg.BatchConcurrency}
	}
	h.ctx, h.cancel = context.WithCancel(context.Background())
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/chat/completions", h.chat)
	mux.HandleFunc("GET /v1/models", h.models)
	mux.HandleFunc("GET /v1/models/{id}", h.model)
	mux.HandleFunc("POST /v1/files", h.uploadFile)
	mux.HandleFunc("GET /v1/files", h.listFiles)
	mux.HandleFunc("GET /v1/files/{id}", h.getFile)
	mux.HandleFunc("DELETE /v1/files/{id}", h.deleteFile)
	mux.HandleFunc("GET /v1/files/{id}/content", h.fileContent)
	mux.HandleFunc("POST /v1/batches", h.createBatch)
	mux.HandleFunc("GET /v1/batches", h.listBatches)
	mux.HandleFunc("GET /v1/batches/{id}", h.getBatch)
	mux.HandleFunc("POST /v1/batches/{id}/cancel", h.cancelBatch)
	h.mux = mux

	batches, err := st.listBatches()
	if err != nil {
		return nil, fmt.Errorf("openai: read batches: %w", err)
	}
	for _, b := range batches {
		switch b.Status {
		case BatchValidating, BatchInProgress, BatchFinalizing:
			b.Status = BatchValidating
			b.RequestCounts = BatchCounts{}
			if err := st.putBatch(b); err != nil {
				return nil, err
			}
			h.start(b)
		case BatchCancelling:
			h.finishCancelled(b)
		}
	}
	return h, nil
}

// Close cancels running batches and waits for them to stop. Their records stay non-final, so a
// later Handler over the same Dir runs them again.
func (h *Handler) Close() error {
	h.cancel()
	h.wg.Wait()
	return nil
}

// ServeHTTP routes a request. Unknown routes get an OpenAI-shaped 404.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if _, pattern := h.mux.Handler(r); pattern == "" {
		writeError(w, &Error{Status: http.StatusNotFound, Type: TypeInvalidRequest,
			Message: fmt.Sprintf("Invalid URL (%s %s)", r.Method, r.URL.Path)})
		return
	}
	h.mux.ServeHTTP(w, r)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, e *Error) {
	writeJSON(w, e.Status, errorBody{Error: e})
}

func (h *Handler) serverError(w http.ResponseWriter, what string, err error) {
	h.cfg.Logf("openai: %s: %v", what, err)
	writeError(w, AsError(err))
}

// readBody reads a body of at most limit bytes, answering 413 past it.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, &Error{Status: http.StatusRequestEntityTooLarge, Type: TypeInvalidRequest, Code: strp(CodeBodyTooLarge),
				Message: fmt.Sprintf("The request body is over the limit of %d bytes.", limit)})
			return nil, false
		}
		writeError(w, Invalid("", "", "Could not read the request body: %v", err))
		return nil, false
	}
	return body, true
}

// fillCompletion sets the fields a backend may leave empty.
func fillCompletion(c *ChatCompletion, model string) {
	if c.ID == "" {
		c.ID = newID("chatcmpl-")
	}
	c.Object = "chat.completion"
	if c.Created == 0 {
		c.Created = time.Now().Unix()
	}
	if c.Model == "" {
		c.Model = model
	}
	if c.Choices == nil {
		c.Choices = []Choice{}
	}
}

func (h *Handler) chat(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r, h.cfg.MaxBodyBytes)
	if !ok {
		return
	}
	req, e := DecodeRequest(body)
	if e == nil {
		e = req.Validate(h.cfg.Validate)
	}
	if e == nil {
		e = checkModel(h.backend, req.Model)
	}
	if e != nil {
		writeError(w, e)
		return
	}
	if !req.Stream {
		c, err := safeCall(r.Context(), h.backend, req, nil)
		if err != nil {
			h.serverError(w, "chat completion", err)
			return
		}
		fillCompletion(c, req.Model)
		writeJSON(w, http.StatusOK, c)
		return
	}

	// Streaming: headers go out with the first chunk, so an error before it is a plain JSON
	// error response.
	id, created := newID("chatcmpl-"), h.cfg.Now().Unix()
	flusher, _ := w.(http.Flusher)
	started := false
	send := func(v any) error {
		if !started {
			w.Header().Set("Content-Type", "text/event-stream")
			w.Header().Set("Cache-Control", "no-cache")
			w.WriteHeader(http.StatusOK)
			started = true
		}
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintf(w, "data: %s\n\n", b); err != nil {
			return err
		}
		if flusher != nil {
			flusher.Flush()
		}
		return nil
	}
	emit := func(c *ChatCompletionChunk) error {
		if c.ID == "" {
			c.ID = id
		}
		c.Object = "chat.completion.chunk"
		if c.Created == 0 {
			c.Created = created
		}
		if c.Model == "" {
			c.Model = req.Model
		}
		if c.Choices == nil {
			c.Choices = []ChunkChoice{}
		}
		c.Usage = nil                 // sent once at the end when asked for
		id, created = c.ID, c.Created // the closing chunks carry the backend's id
		return send(c)
	}
	c, err := safeCall(r.Context(), h.backend, req, emit)
	if err != nil {
		if !started {
			h.serverError(w, "chat completion", err)
			return
		}
		h.cfg.Logf("openai: streamed chat completion: %v", err)
		_ = send(errorBody{Error: AsError(err)})
		return
	}
	if req.StreamOptions != nil && req.StreamOptions.IncludeUsage {
		_ = send(&ChatCompletionChunk{ID: id, Object: "chat.completion.chunk", Created: created, Model: req.Model,
			Choices: []ChunkChoice{}, Usage: c.Usage})
	}
	if !started {
		_ = send(&ChatCompletionChunk{ID: id, Object: "chat.completion.chunk", Created: created, Model: req.Model, Choices: []ChunkChoice{}})
	}
	_, _ = io.WriteString(w, "data: [DONE]\n\n")
	if flusher != nil {
		flusher.Flush()
	}
}

func (h *Handler) models(w http.ResponseWriter, r *http.Request) {
	ms := h.backend.Models()
	if ms == nil {
		ms = []Model{}
	}
	writeJSON(w, http.StatusOK, ModelList{Object: "list", Data: ms})
}

func (h *Handler) model(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	for _, m := range h.backend.Models() {
		if m.ID == id {
			writeJSON(w, http.StatusOK, m)
			return
		}
	}
	writeError(w, checkModel(h.backend, id))
}

func (h *Handler) uploadFile(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, h.cfg.MaxFileBytes+1<<20)
	mr, err := r.MultipartReader()
	if err != nil {
		writeError(w, Invalid("file", "", "The body must be multipart/form-data with 'purpose' and 'file' fields: %v", err))
		return
	}
	purpose := ""
	var stored *File
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			h.uploadError(w, err)
			return
		}
		switch part.FormName() {
		case "purpose":
			b, err := io.ReadAll(io.LimitReader(part, 64))
			if err != nil {
				h.uploadError(w, err)
				return
			}
			purpose = strings.TrimSpace(string(b))
		case "file":
			if stored != nil {
				writeError(w, Invalid("file", "", "Only one file may be uploaded per request."))
				return
			}
			name := part.FileName()
			if name == "" {
				name = "upload.jsonl"
			}
			f, err := h.store.putFile(File{Filename: name, CreatedAt: h.cfg.Now().Unix()}, part, h.cfg.MaxFileBytes)
			if err != nil {
				h.uploadError(w, err)
				return
			}
			stored = &f
		}
		part.Close()
	}
	switch {
	case stored == nil:
		writeError(w, Invalid("file", CodeMissing, "Missing required parameter: 'file'."))
		return
	case purpose != "batch":
		_ = h.store.deleteFile(stored.ID)
		writeError(w, Invalid("purpose", CodeInvalidValue, "Invalid value for 'purpose': %q. Supported values are: 'batch'.", purpose))
		return
	}
	stored.Purpose = purpose
	// Record the purpose now that it is known (fields may come in any order).
	meta, _ := json.Marshal(stored)
	if err := writeAtomic(h.store.filePath(stored.ID, ".json"), meta); err != nil {
		h.serverError(w, "upload", err)
		return
	}
	writeJSON(w, http.StatusOK, stored)
}

func (h *Handler) uploadError(w http.ResponseWriter, err error) {
	var mbe *http.MaxBytesError
	if errors.Is(err, errTooLarge) || errors.As(err, &mbe) {
		writeError(w, &Error{Status: http.StatusRequestEntityTooLarge, Type: TypeInvalidRequest, Code: strp(CodeBodyTooLarge), Param: strp("file"),
			Message: fmt.Sprintf("The file is over the limit of %d bytes.", h.cfg.MaxFileBytes)})
		return
	}
	writeError(w, Invalid("file", "", "Could not read the upload: %v", err))
}

func (h *Handler) fileError(w http.ResponseWriter, id string, err error) {
	if errors.Is(err, errNotFound) {
		writeError(w, NotFound("No such File object: %s", id))
		return
	}
	h.serverError(w, "file "+id, err)
}

func (h *Handler) listFiles(w http.ResponseWriter, r *http.Request) {
	fs, err := h.store.listFiles()
	if err != nil {
		h.serverError(w, "list files", err)
		return
	}
	writeJSON(w, http.StatusOK, FileList{Object: "list", Data: fs})
}

func (h *Handler) getFile(w http.ResponseWriter, r *http.Request) {
	f, err := h.store.getFile(r.PathValue("id"))
	if err != nil {
		h.fileError(w, r.PathValue("id"), err)
		return
	}
	writeJSON(w, http.StatusOK, f)
}

func (h *Handler) deleteFile(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := h.store.deleteFile(id); err != nil {
		h.fileError(w, id, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": id, "object": "file", "deleted": true})
}

func (h *Handler) fileContent(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	fh, err := h.store.openFile(id)
	if err != nil {
		h.fileError(w, id, err)
		return
	}
	defer fh.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	_, _ = io.Copy(w, fh)
}
