package api

import (
	"context"
	"net/http"
	"net/url"
)

// GroupRequest is the body of PUT /v1/groups/{name} and one [[group]] table of
// `clusterd apply -f`: a resource group's own settings, its lifecycle hooks (run once
// per group on a node: online after every member is up there, offline before the
// first member goes, failed after a member failed), each within HookTimeout.
type GroupRequest struct {
	Name        string `json:"name" toml:"name"`
	HookOnline  string `json:"hook_online,omitempty" toml:"hook_online"`
	HookOffline string `json:"hook_offline,omitempty" toml:"hook_offline"`
	HookFailed  string `json:"hook_failed,omitempty" toml:"hook_failed"`
	HookTimeout string `json:"hook_timeout,omitempty" toml:"hook_timeout"`
}

// GroupBackend is the optional part of a Backend that serves group settings; a
// Backend without it has no /v1/groups routes.
type GroupBackend interface {
	Groups(ctx context.Context) ([]GroupRequest, error)
	PutGroup(ctx context.Context, g GroupRequest) (WriteResult, error)
	DeleteGroup(ctx context.Context, name string) (WriteResult, error)
}

func (s *server) groupRoutes(mux *http.ServeMux) {
	gb, ok := s.b.(GroupBackend)
	if !ok {
		return
	}
	mux.HandleFunc("GET /v1/groups", func(w http.ResponseWriter, r *http.Request) {
		gs, err := gb.Groups(r.Context())
		reply(w, gs, err)
	})
	mux.HandleFunc("PUT /v1/groups/{name}", s.write(func(w http.ResponseWriter, r *http.Request) {
		var g GroupRequest
		if !decode(w, r, &g) {
			return
		}
		g.Name = r.PathValue("name")
		res, err := gb.PutGroup(r.Context(), g)
		reply(w, res, err)
	}))
	mux.HandleFunc("DELETE /v1/groups/{name}", s.write(func(w http.ResponseWriter, r *http.Request) {
		res, err := gb.DeleteGroup(r.Context(), r.PathValue("name"))
		reply(w, res, err)
	}))
}

// Groups calls GET /v1/groups: every group's settings.
func (c *Client) Groups(ctx context.Context) ([]GroupRequest, error) {
	var gs []GroupRequest
	err := c.do(ctx, http.MethodGet, "/v1/groups", nil, &gs)
	return gs, err
}

// PutGroup calls PUT /v1/groups/{name}: create or replace a group's settings.
func (c *Client) PutGroup(ctx context.Context, g GroupRequest) (WriteResult, error) {
	var res WriteResult
	err := c.do(ctx, http.MethodPut, "/v1/groups/"+url.PathEscape(g.Name), g, &res)
	return res, err
}

// DeleteGroup calls DELETE /v1/groups/{name}: remove a group's settings.
func (c *Client) DeleteGroup(ctx context.Context, name string) (WriteResult, error) {
	var res WriteResult
	err := c.do(ctx, http.MethodDelete, "/v1/groups/"+url.PathEscape(name), nil, &res)
	return res, err
}
