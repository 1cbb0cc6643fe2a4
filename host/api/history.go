package api

import (
	"net/http"
	"time"
)

// history answers GET /v1/history[?since=RFC3339 time] with a
// history.Snapshot: per VM, the points (size, node, phase and the guest's
// usage at each control-loop pass), the scaler's decisions and the
// migrations recorded strictly after since, oldest first; with "latest",
// the time to pass as since on the next poll, and the limits the host keeps
// history within.
func (s *Server) history(w http.ResponseWriter, r *http.Request) {
	var since time.Time
	for name, values := range r.URL.Query() {
		if name != "since" {
			writeError(w, http.StatusBadRequest, "%s: unknown parameter (the only one is since)", name)
			return
		}
		if len(values) != 1 {
			writeError(w, http.StatusBadRequest, "since: given %d times, want once", len(values))
			return
		}
		t, err := time.Parse(time.RFC3339Nano, values[0])
		if err != nil {
			writeError(w, http.StatusBadRequest, "since: %q is not an RFC 3339 time such as 2026-11-27T22:00:00.5Z", values[0])
			return
		}
		since = t
	}
	snap, err := s.backend.History(r.Context(), since)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, snap)
}
