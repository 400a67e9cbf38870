package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/clusterd/clusterd/consensus"
	"github.com/clusterd/clusterd/health/api"
)

// Day-two operations: maintenance mode and backup/restore of the replicated state.

func (b backend) SetMaintenance(ctx context.Context, on bool, reason string) (api.WriteResult, error) {
	idx, err := b.a.commit(ctx, consensus.SetMaintenance(on, reason))
	if err == nil {
		state := "off"
		if on {
			state = "on"
		}
		b.a.log.Warn("maintenance mode "+state, "reason", reason)
	}
	return api.WriteResult{Index: idx}, err
}

func (b backend) ExportState(ctx context.Context) ([]byte, error) {
	return b.a.store.ExportState()
}

func (b backend) RestoreState(ctx context.Context, doc []byte) (api.WriteResult, error) {
	parsed, err := consensus.ParseStateDocument(doc)
	if err != nil {
		return api.WriteResult{}, fmt.Errorf("%w: %v", api.ErrInvalid, err)
	}
	idx, err := b.a.commit(ctx, consensus.RestoreState(parsed))
	if err == nil {
		b.a.log.Warn("replicated state restored from a backup", "resources", len(parsed.State.Resources))
	}
	return api.WriteResult{Index: idx}, err
}

// readBody reads a request body up to limit bytes.
func readBody(r *http.Request, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, errors.New("body too large")
	}
	return b, nil
}
