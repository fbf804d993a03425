package api

import (
	"errors"
	"net/http"

	"github.com/lojal/lojal/internal/links"
	"github.com/lojal/lojal/internal/store"
)

// click serves a tracked link (GET /k/{token}): it records that the
// customer engaged with the message the link is in, then redirects to the
// destination signed into the token. The destination comes only from a
// token that verifies, so nothing a visitor writes can choose where the
// redirect goes: a tampered, forged, truncated or oversized token is a
// 400 with no Location.
//
// An expired link, or a HEAD request (link checkers and mail scanners
// probe with it), still redirects but records nothing. Recording never
// stands between the customer and the page: a click by an erased
// customer or while the database is away is logged, not shown.
func (s *Server) click(w http.ResponseWriter, r *http.Request) {
	now := s.now()
	c, err := s.Links.VerifyClick(r.PathValue("token"), now)
	expired := errors.Is(err, links.ErrExpired)
	if err != nil && !expired {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte("This link is not valid: it was changed or cut short. Open it again from the message.\n"))
		return
	}
	if !expired && r.Method == http.MethodGet {
		if _, err := s.Store.RecordClick(r.Context(), c.CustomerID, c.MessageKey, now); err != nil && !errors.Is(err, store.ErrNotFound) {
			s.Log.Error("record click", "message", c.MessageKey, "err", err)
		}
	}
	w.Header().Set("Cache-Control", "no-store")
	// The token names the customer and message: the destination need not
	// see it in a Referer.
	w.Header().Set("Referrer-Policy", "no-referrer")
	http.Redirect(w, r, c.URL, http.StatusFound)
}
