package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// Problem is an RFC 9457 problem detail.
type Problem struct {
	Type     string       `json:"type"`
	Title    string       `json:"title"`
	Status   int          `json:"status"`
	Detail   string       `json:"detail,omitempty"`
	Instance string       `json:"instance,omitempty"`
	Errors   []FieldError `json:"errors,omitempty"`
}

// FieldError points at one bad part of a request body.
type FieldError struct {
	Pointer string `json:"pointer,omitempty"`
	Detail  string `json:"detail"`
}

// problemBase prefixes problem types; they are documented in the OpenAPI
// document.
const problemBase = "https://lojal.dev/problems/"

func problem(w http.ResponseWriter, r *http.Request, status int, typ, title, detail string, errs ...FieldError) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(Problem{Type: problemBase + typ, Title: title, Status: status, Detail: detail,
		Instance: r.URL.Path, Errors: errs})
}

func (s *Server) internal(w http.ResponseWriter, r *http.Request, err error) {
	s.Log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	problem(w, r, http.StatusInternalServerError, "internal", "Internal error", "the request could not be completed; it is safe to retry")
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// decode reads one JSON value into v, strictly: unknown fields, trailing
// data and bodies over limit are errors. It writes the problem response
// and returns false on failure.
func decode(w http.ResponseWriter, r *http.Request, limit int64, v any) bool {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		problem(w, r, http.StatusUnsupportedMediaType, "unsupported-media-type", "Send JSON", "Content-Type must be application/json, not "+ct)
		return false
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if dec.More() || dec.Decode(&struct{}{}) != io.EOF {
			err = errors.New("trailing data after the JSON value")
		}
	}
	if err == nil {
		return true
	}
	var tooBig *http.MaxBytesError
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &tooBig):
		problem(w, r, http.StatusRequestEntityTooLarge, "too-large", "Request body too large", fmt.Sprintf("the limit is %d bytes", limit))
	case errors.As(err, &syntax):
		problem(w, r, http.StatusBadRequest, "malformed-json", "Malformed JSON", fmt.Sprintf("%v (at byte %d)", syntax, syntax.Offset))
	case errors.As(err, &typ):
		problem(w, r, http.StatusUnprocessableEntity, "invalid", "Invalid request", "wrong type",
			FieldError{Pointer: "/" + strings.ReplaceAll(typ.Field, ".", "/"), Detail: fmt.Sprintf("want %s, got JSON %s", typ.Type, typ.Value)})
	case errors.Is(err, io.EOF):
		problem(w, r, http.StatusBadRequest, "malformed-json", "Malformed JSON", "empty body")
	case strings.HasPrefix(err.Error(), "json: unknown field"):
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		problem(w, r, http.StatusUnprocessableEntity, "invalid", "Invalid request", "unknown field "+field,
			FieldError{Pointer: "/" + field, Detail: "unknown field"})
	default:
		problem(w, r, http.StatusBadRequest, "malformed-json", "Malformed JSON", err.Error())
	}
	return false
}
