package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/lojal/lojal/internal/journey"
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
	// The route, not the path: a path may be a customer's link token
	// (/p/, /u/, /a/, /k/, /o/) or address (/v1/suppressions/...).
	s.Log.Error("request failed", "method", r.Method, "route", r.Pattern, "err", err)
	problem(w, r, http.StatusInternalServerError, "internal", "Internal error", "the request could not be completed; it is safe to retry")
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// decode reads one JSON value into v, strictly: unknown fields, trailing
// data, text that is not UTF-8 and bodies over limit are errors. It writes
// the problem response and returns false on failure.
func decode(w http.ResponseWriter, r *http.Request, limit int64, v any) bool {
	b, ok := readBody(w, r, limit)
	if !ok {
		return false
	}
	if i := invalidUTF8(b); i >= 0 {
		problem(w, r, http.StatusUnprocessableEntity, "invalid", "Invalid request", fmt.Sprintf("the body is not valid UTF-8 (at byte %d)", i))
		return false
	}
	if err := strictJSON(b, v); err != nil {
		p := jsonProblem(err)
		problem(w, r, p.Status, p.Type, p.Title, p.Detail, p.Errors...)
		return false
	}
	if err := nulText(b); err != nil {
		problem(w, r, http.StatusUnprocessableEntity, "invalid", "Invalid request", err.Msg, FieldError{Pointer: err.Pointer, Detail: err.Msg})
		return false
	}
	return true
}

// nulText finds a string of a JSON body (value or key) that decodes to
// text holding a NUL (the escape \u0000): Postgres stores no NUL, in text
// or jsonb, and every free-text field would otherwise fail at the insert,
// a 500 that a client retries for ever. Only a body that holds the escape
// is walked.
func nulText(b []byte) *journey.InputError {
	if !bytes.Contains(b, []byte(`\u0000`)) {
		return nil
	}
	var v any
	if json.Unmarshal(b, &v) != nil {
		return nil
	}
	var ie *journey.InputError
	if errors.As(journey.CheckText("", v), &ie) {
		return ie
	}
	return nil
}

// readBody checks the content type and reads the body, up to limit bytes.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, bool) {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		problem(w, r, http.StatusUnsupportedMediaType, "unsupported-media-type", "Send JSON", "Content-Type must be application/json, not "+ct)
		return nil, false
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		problem(w, r, http.StatusRequestEntityTooLarge, "too-large", "Request body too large", fmt.Sprintf("the limit is %d bytes", limit))
		return nil, false
	case err != nil:
		problem(w, r, http.StatusBadRequest, "malformed", "Unreadable body", err.Error())
		return nil, false
	}
	return b, true
}

// invalidUTF8 returns the offset of the first byte that is not UTF-8, or
// -1. JSON decoding would quietly turn such bytes into U+FFFD; lojal
// refuses them instead of storing something the sender did not send.
func invalidUTF8(b []byte) int {
	if utf8.Valid(b) {
		return -1
	}
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 {
			return i
		}
		i += n
	}
	return -1
}

// strictJSON decodes exactly one JSON value into v, refusing unknown
// fields and trailing data.
func strictJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() || dec.Decode(&struct{}{}) != io.EOF {
		return errors.New("trailing data after the JSON value")
	}
	return nil
}

// jsonProblem describes a strictJSON error.
func jsonProblem(err error) Problem {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var ts *time.ParseError
	switch {
	case errors.As(err, &ts) || strings.HasPrefix(err.Error(), "Time.UnmarshalJSON"):
		// An event's "at" is the only timestamp in a request body.
		return Problem{Status: http.StatusUnprocessableEntity, Type: "invalid", Title: "Invalid request", Detail: "at: want an RFC 3339 timestamp",
			Errors: []FieldError{{Pointer: "/at", Detail: "want an RFC 3339 timestamp such as 2026-03-01T10:00:00Z"}}}
	case errors.As(err, &syntax):
		return Problem{Status: http.StatusBadRequest, Type: "malformed-json", Title: "Malformed JSON", Detail: fmt.Sprintf("%v (at byte %d)", syntax, syntax.Offset)}
	case errors.As(err, &typ):
		return Problem{Status: http.StatusUnprocessableEntity, Type: "invalid", Title: "Invalid request", Detail: "wrong type",
			Errors: []FieldError{{Pointer: "/" + strings.ReplaceAll(typ.Field, ".", "/"), Detail: fmt.Sprintf("want %s, got JSON %s", typ.Type, typ.Value)}}}
	case errors.Is(err, io.EOF):
		return Problem{Status: http.StatusBadRequest, Type: "malformed-json", Title: "Malformed JSON", Detail: "empty body"}
	case strings.HasPrefix(err.Error(), "json: unknown field"):
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return Problem{Status: http.StatusUnprocessableEntity, Type: "invalid", Title: "Invalid request", Detail: "unknown field " + field,
			Errors: []FieldError{{Pointer: "/" + field, Detail: "unknown field"}}}
	}
	return Problem{Status: http.StatusBadRequest, Type: "malformed-json", Title: "Malformed JSON", Detail: err.Error()}
}

// invalidInput answers 422 for a customer or event that failed
// validation, pointing at the field when the error says which.
func invalidInput(w http.ResponseWriter, r *http.Request, title string, err error) {
	detail := strings.TrimPrefix(err.Error(), "invalid: ")
	var ie *journey.InputError
	if errors.As(err, &ie) {
		problem(w, r, http.StatusUnprocessableEntity, "invalid", title, detail, FieldError{Pointer: ie.Pointer, Detail: ie.Msg})
		return
	}
	problem(w, r, http.StatusUnprocessableEntity, "invalid", title, detail)
}
