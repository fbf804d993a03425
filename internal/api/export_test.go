package api

import "net/http"

// Recover exposes the panic guard to the external tests.
func (s *Server) Recover(h http.Handler) http.Handler { return s.recover(h) }

// Internal exposes the internal-error answer to the external tests.
func (s *Server) Internal(w http.ResponseWriter, r *http.Request, err error) { s.internal(w, r, err) }
