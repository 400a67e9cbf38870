package lab_test

import (
	"context"
	"testing"

	"github.com/clusterd/clusterd/test/lab"
)

// BenchmarkCreateClose measures building and tearing down a lab (3 nodes and a
// client, and 50 nodes) — the fixed cost every kernel test pays.
func BenchmarkCreateClose(b *testing.B) {
	for _, bc := range []struct {
		name string
		opts lab.Options
	}{
		{"nodes=3", lab.Options{Nodes: 3, Client: true}},
		{"nodes=50", lab.Options{Nodes: 50, Client: true}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				l, err := lab.Create(context.Background(), bc.opts)
				if err != nil {
					b.Fatal(err)
				}
				if err := l.Close(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
