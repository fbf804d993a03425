package api

import "net/http"

// Recover exposes the panic guard to the external tests.
func (s *Server) Recover(h http.Handler) http.Handler { return s.recover(h) }
