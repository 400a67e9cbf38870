package main

import (
	"flag"

	"github.com/clusterd/clusterd/cmd/clusterd/internal/agent"
)

type flagT = flag.Flag

// overrideFromFlag copies one explicitly given flag over the file's value.
func overrideFromFlag(dst, src *agent.Config, name string) {
	switch name {
	case "node-id":
		dst.NodeID = src.NodeID
	case "data-dir":
		dst.DataDir = src.DataDir
	case "raft-addr":
		dst.RaftAddr = src.RaftAddr
	case "api-addr":
		dst.APIAddr = src.APIAddr
	case "bootstrap":
		dst.Bootstrap = src.Bootstrap
	case "join":
		dst.Join = src.Join
	case "profile":
		dst.Profile = src.Profile
	case "log-level":
		dst.LogLevel = src.LogLevel
	case "log-format":
		dst.LogFormat = src.LogFormat
	case "tls-ca":
		dst.TLSCA = src.TLSCA
	case "tls-cert":
		dst.TLSCert = src.TLSCert
	case "tls-key":
		dst.TLSKey = src.TLSKey
	case "token":
		dst.Token = src.Token
	case "token-file":
		dst.TokenFile = src.TokenFile
	}
}
