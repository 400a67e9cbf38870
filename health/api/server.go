package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
)

// Conditions a Backend reports; the server maps them to HTTP statuses.
var (
	ErrInvalid   = errors.New("invalid request")      // 400
	ErrNotFound  = errors.New("not found")            // 404
	ErrConflict  = errors.New("conflict")             // 409
	ErrNoLeader  = errors.New("no raft leader")       // 503
	ErrForbidden = errors.New("refused by this node") // 403
)

// Backend is what the API serves. Writes are only called on the leader.
type Backend interface {
	Status(ctx context.Context) (Status, error)
	AddResource(ctx context.Context, r ResourceRequest) (WriteResult, error)
	RemoveResource(ctx context.Context, name string) (WriteResult, error)
	Apply(ctx context.Context, req ApplyRequest) (ApplyResult, error)
	Join(ctx context.Context, req JoinRequest) (WriteResult, error)
	RemoveNode(ctx context.Context, id string) (WriteResult, error)
	Move(ctx context.Context, name string, req MoveRequest) (WriteResult, error)
	SetDraining(ctx context.Context, node string, draining bool) (WriteResult, error)
	Rebalance(ctx context.Context, dryRun bool) (WriteResult, error)
	SetMaintenance(ctx context.Context, on bool, reason string) (WriteResult, error)
	// ExportState returns a backup document of the whole replicated state (on the
	// leader, which is never behind); RestoreState replaces the state with one.
	ExportState(ctx context.Context) ([]byte, error)
	RestoreState(ctx context.Context, doc []byte) (WriteResult, error)
	// Leader says whether this node is the raft leader and, if not, the base URL of
	// the leader's API ("" when there is no leader).
	Leader() (self bool, leaderAPI string)
}

// forwardedHeader marks a request a follower forwarded, so it is never forwarded twice.
const forwardedHeader = "X-Clusterd-Forwarded"

// Handler serves /v1/ over b.
func Handler(b Backend, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &server{b: b, log: log}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", s.status)
	mux.HandleFunc("GET /v1/resources", s.status)
	mux.HandleFunc("POST /v1/resources", s.write(s.addResource))
	mux.HandleFunc("DELETE /v1/resources/{name}", s.write(s.removeResource))
	mux.HandleFunc("POST /v1/resources/{name}/move", s.write(s.move))
	mux.HandleFunc("POST /v1/apply", s.write(s.apply))
	mux.HandleFunc("POST /v1/join", s.write(s.join))
	mux.HandleFunc("DELETE /v1/nodes/{id}", s.write(s.removeNode))
	mux.HandleFunc("POST /v1/nodes/{id}/drain", s.write(s.drain(true)))
	mux.HandleFunc("POST /v1/nodes/{id}/undrain", s.write(s.drain(false)))
	mux.HandleFunc("POST /v1/rebalance", s.write(s.rebalance))
	mux.HandleFunc("POST /v1/maintenance", s.write(s.maintenance))
	mux.HandleFunc("POST /v1/snapshot/save", s.write(s.snapshotSave))
	mux.HandleFunc("POST /v1/snapshot/restore", s.write(s.snapshotRestore))
	s.groupRoutes(mux)
	mux.HandleFunc("/v1/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, fmt.Errorf("%w: no API call %s %s (see `clusterd --help`)", ErrNotFound, r.Method, r.URL.Path))
	})
	return mux
}

type server struct {
	b   Backend
	log *slog.Logger
}

// write runs h on the leader; on a follower it forwards the request to the leader.
func (s *server) write(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		self, leader := s.b.Leader()
		if self {
			h(w, r)
			return
		}
		if leader == "" || r.Header.Get(forwardedHeader) != "" {
			writeError(w, fmt.Errorf("%w: this node knows no leader to send the write to (the cluster may have lost quorum; check `clusterd nodes` and retry)", ErrNoLeader))
			return
		}
		target, err := url.Parse(leader)
		if err != nil {
			writeError(w, fmt.Errorf("%w: leader API address %q: %v", ErrNoLeader, leader, err))
			return
		}
		p := httputil.NewSingleHostReverseProxy(target)
		p.ErrorHandler = func(w http.ResponseWriter, _ *http.Request, err error) {
			writeError(w, fmt.Errorf("%w: forwarding to the leader at %s failed: %v (retry; a new leader may be being elected)", ErrNoLeader, leader, err))
		}
		r.Header.Set(forwardedHeader, "1")
		p.ServeHTTP(w, r)
	}
}

func (s *server) status(w http.ResponseWriter, r *http.Request) {
	st, err := s.b.Status(r.Context())
	reply(w, st, err)
}

func (s *server) addResource(w http.ResponseWriter, r *http.Request) {
	var req ResourceRequest
	if !decode(w, r, &req) {
		return
	}
	res, err := s.b.AddResource(r.Context(), req)
	reply(w, res, err)
}

func (s *server) removeResource(w http.ResponseWriter, r *http.Request) {
	res, err := s.b.RemoveResource(r.Context(), r.PathValue("name"))
	reply(w, res, err)
}

func (s *server) move(w http.ResponseWriter, r *http.Request) {
	var req MoveRequest
	if !decode(w, r, &req) {
		return
	}
	res, err := s.b.Move(r.Context(), r.PathValue("name"), req)
	reply(w, res, err)
}

func (s *server) apply(w http.ResponseWriter, r *http.Request) {
	var req ApplyRequest
	if !decode(w, r, &req) {
		return
	}
	res, err := s.b.Apply(r.Context(), req)
	reply(w, res, err)
}

func (s *server) join(w http.ResponseWriter, r *http.Request) {
	var req JoinRequest
	if !decode(w, r, &req) {
		return
	}
	res, err := s.b.Join(r.Context(), req)
	reply(w, res, err)
}

func (s *server) removeNode(w http.ResponseWriter, r *http.Request) {
	res, err := s.b.RemoveNode(r.Context(), r.PathValue("id"))
	reply(w, res, err)
}

func (s *server) drain(on bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		res, err := s.b.SetDraining(r.Context(), r.PathValue("id"), on)
		reply(w, res, err)
	}
}

func (s *server) rebalance(w http.ResponseWriter, r *http.Request) {
	res, err := s.b.Rebalance(r.Context(), r.URL.Query().Get("dry_run") == "true")
	reply(w, res, err)
}

// MaintenanceRequest is the body of POST /v1/maintenance.
type MaintenanceRequest struct {
	On     bool   `json:"on"`
	Reason string `json:"reason,omitempty"`
}

func (s *server) maintenance(w http.ResponseWriter, r *http.Request) {
	var req MaintenanceRequest
	if !decode(w, r, &req) {
		return
	}
	res, err := s.b.SetMaintenance(r.Context(), req.On, req.Reason)
	reply(w, res, err)
}

func (s *server) snapshotSave(w http.ResponseWriter, r *http.Request) {
	doc, err := s.b.ExportState(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(doc)
}

func (s *server) snapshotRestore(w http.ResponseWriter, r *http.Request) {
	doc, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		writeError(w, fmt.Errorf("%w: read backup document: %v", ErrInvalid, err))
		return
	}
	res, err := s.b.RestoreState(r.Context(), doc)
	reply(w, res, err)
}

// maxBody bounds request bodies (an apply of 10,000 resources is about 3 MB).
const maxBody = 32 << 20

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(w, fmt.Errorf("%w: request body is not valid JSON for %s %s: %v", ErrInvalid, r.Method, r.URL.Path, err))
		return false
	}
	return true
}

func reply(w http.ResponseWriter, v any, err error) {
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// StatusCode maps an error to its HTTP status.
func StatusCode(err error) int {
	switch {
	case errors.Is(err, ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, ErrConflict):
		return http.StatusConflict
	case errors.Is(err, ErrForbidden):
		return http.StatusForbidden
	case errors.Is(err, ErrNoLeader):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

func writeError(w http.ResponseWriter, err error) {
	writeJSON(w, StatusCode(err), ErrorBody{Error: err.Error()})
}
