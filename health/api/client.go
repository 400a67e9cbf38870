package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Client calls a clusterd API.
type Client struct {
	Base  string // e.g. http://127.0.0.1:7400
	HTTP  *http.Client
	Token string // the cluster token, sent as "Authorization: Bearer TOKEN"
}

// NewClient returns a client for the API at base with a sane timeout.
func NewClient(base string) *Client {
	return &Client{Base: strings.TrimRight(base, "/"), HTTP: &http.Client{Timeout: 30 * time.Second}}
}

// StatusError is an error answer from the API.
type StatusError struct {
	Code int
	Msg  string
}

func (e *StatusError) Error() string { return e.Msg }

// Is lets callers test API errors against the package's sentinels.
func (e *StatusError) Is(target error) bool {
	switch target {
	case ErrInvalid:
		return e.Code == http.StatusBadRequest
	case ErrNotFound:
		return e.Code == http.StatusNotFound
	case ErrConflict:
		return e.Code == http.StatusConflict
	case ErrNoLeader:
		return e.Code == http.StatusServiceUnavailable
	case ErrForbidden:
		return e.Code == http.StatusForbidden
	case ErrUnauthorized:
		return e.Code == http.StatusUnauthorized
	}
	return false
}

// ErrUnauthorized means the call lacked the right cluster token.
var ErrUnauthorized = errors.New("unauthorized")

// ErrUnreachable means no API answered at the address.
var ErrUnreachable = errors.New("clusterd API unreachable")

// noLeaderRetry bounds how long a call retries while the cluster elects a leader
// (the request never left the node it reached, so retrying cannot apply it twice).
const noLeaderRetry = 5 * time.Second

func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	deadline := time.Now().Add(noLeaderRetry)
	for {
		err := c.once(ctx, method, path, body, out)
		var se *StatusError
		if !errors.As(err, &se) || se.Code != http.StatusServiceUnavailable || !strings.Contains(se.Msg, "knows no leader") || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (c *Client) once(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, rd)
	if err != nil {
		return fmt.Errorf("bad API address %q: %w (give --api http://HOST:PORT)", c.Base, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil && strings.Contains(err.Error(), "certificate") {
		return fmt.Errorf("%w: TLS with %s failed (%v): check --tls-ca and that every certificate comes from the cluster CA (`clusterd tls`)", ErrUnreachable, c.Base, unwrapURL(err))
	}
	if err != nil {
		return fmt.Errorf("%w: cannot reach the clusterd API at %s (%v); is the agent running? start one with `clusterd agent --dev`, or point --api or CLUSTERD_API at a node's API", ErrUnreachable, c.Base, unwrapURL(err))
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return fmt.Errorf("read answer from %s: %w", c.Base, err)
	}
	if resp.StatusCode != http.StatusOK {
		var eb ErrorBody
		if json.Unmarshal(b, &eb) != nil || eb.Error == "" {
			eb.Error = fmt.Sprintf("%s %s: HTTP %d: %s", method, path, resp.StatusCode, strings.TrimSpace(string(b)))
		}
		return &StatusError{Code: resp.StatusCode, Msg: eb.Error}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("answer from %s%s is not what this CLI expects (%v); are the CLI and the agent the same version?", c.Base, path, err)
	}
	return nil
}

func unwrapURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// Status calls GET /v1/status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var st Status
	err := c.do(ctx, http.MethodGet, "/v1/status", nil, &st)
	return st, err
}

// AddResource calls POST /v1/resources.
func (c *Client) AddResource(ctx context.Context, r ResourceRequest) (WriteResult, error) {
	var res WriteResult
	err := c.do(ctx, http.MethodPost, "/v1/resources", r, &res)
	return res, err
}

// RemoveResource calls DELETE /v1/resources/NAME.
func (c *Client) RemoveResource(ctx context.Context, name string) (WriteResult, error) {
	var res WriteResult
	err := c.do(ctx, http.MethodDelete, "/v1/resources/"+url.PathEscape(name), nil, &res)
	return res, err
}

// Apply calls POST /v1/apply.
func (c *Client) Apply(ctx context.Context, req ApplyRequest) (ApplyResult, error) {
	var res ApplyResult
	err := c.do(ctx, http.MethodPost, "/v1/apply", req, &res)
	return res, err
}

// Join calls POST /v1/join.
func (c *Client) Join(ctx context.Context, req JoinRequest) (WriteResult, error) {
	var res WriteResult
	err := c.do(ctx, http.MethodPost, "/v1/join", req, &res)
	return res, err
}

// RemoveNode calls DELETE /v1/nodes/ID.
func (c *Client) RemoveNode(ctx context.Context, id string) (WriteResult, error) {
	var res WriteResult
	err := c.do(ctx, http.MethodDelete, "/v1/nodes/"+url.PathEscape(id), nil, &res)
	return res, err
}

// Move calls POST /v1/resources/NAME/move.
func (c *Client) Move(ctx context.Context, name string, req MoveRequest) (WriteResult, error) {
	var res WriteResult
	err := c.do(ctx, http.MethodPost, "/v1/resources/"+url.PathEscape(name)+"/move", req, &res)
	return res, err
}

// SetDraining calls POST /v1/nodes/ID/drain or /undrain.
func (c *Client) SetDraining(ctx context.Context, node string, on bool) (WriteResult, error) {
	verb := "undrain"
	if on {
		verb = "drain"
	}
	var res WriteResult
	err := c.do(ctx, http.MethodPost, "/v1/nodes/"+url.PathEscape(node)+"/"+verb, nil, &res)
	return res, err
}

// Rebalance calls POST /v1/rebalance.
func (c *Client) Rebalance(ctx context.Context, dryRun bool) (WriteResult, error) {
	var res WriteResult
	err := c.do(ctx, http.MethodPost, fmt.Sprintf("/v1/rebalance?dry_run=%t", dryRun), nil, &res)
	return res, err
}

// Events calls GET /v1/events: every node's events, oldest first.
func (c *Client) Events(ctx context.Context, out any) error {
	return c.do(ctx, http.MethodGet, "/v1/events", nil, out)
}

// SetMaintenance calls POST /v1/maintenance.
func (c *Client) SetMaintenance(ctx context.Context, on bool, reason string) (WriteResult, error) {
	var res WriteResult
	err := c.do(ctx, http.MethodPost, "/v1/maintenance", MaintenanceRequest{On: on, Reason: reason}, &res)
	return res, err
}

// SnapshotSave calls POST /v1/snapshot/save and returns the backup document.
func (c *Client) SnapshotSave(ctx context.Context) ([]byte, error) {
	var raw json.RawMessage
	err := c.do(ctx, http.MethodPost, "/v1/snapshot/save", nil, &raw)
	return raw, err
}

// SnapshotRestore calls POST /v1/snapshot/restore with a backup document.
func (c *Client) SnapshotRestore(ctx context.Context, doc []byte) (WriteResult, error) {
	var res WriteResult
	err := c.do(ctx, http.MethodPost, "/v1/snapshot/restore", json.RawMessage(doc), &res)
	return res, err
}
